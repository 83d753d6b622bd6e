-- SPDX-License-Identifier: ISC
-- racerd: a connection dropped; its session stays resumable.
--
-- KEYS[1] sess, KEYS[2] due, KEYS[3] who
-- ARGV[1] owner, ARGV[2] last seq, ARGV[3] window deadline (ms),
-- ARGV[4] due member, ARGV[5] channel, ARGV[6] user, ARGV[7] token,
-- ARGV[8] slack (ms) that records outlive their deadline by,
-- ARGV[9] presence-events-max
-- Returns 1, or 0 if another connection owns the session now.
-- Publishes the presence frame "! {away}".
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'away', 'last', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3] + ARGV[8])
redis.call('HSET', KEYS[3], ARGV[7], 'away ' .. ARGV[6])
keep(KEYS[3], ARGV[3] + ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
presence(ARGV[5], KEYS[3], 'away', ARGV[6], ARGV[9])
return 1
