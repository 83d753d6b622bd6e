-- SPDX-License-Identifier: ISC
-- racerd: the client closed with 1000; the session ends now and the
-- user's position is kept for the next join.
--
-- KEYS[1] sess, KEYS[2] due, KEYS[3] pos, KEYS[4] who
-- ARGV[1] owner, ARGV[2] due member, ARGV[3] last seq, ARGV[4] pos ttl (s),
-- ARGV[5] channel, ARGV[6] user, ARGV[7] token, ARGV[8] presence-events-max
-- Returns 1, or 0 if another connection owns the session.
-- Publishes the presence frame "! {leave}".
local s = redis.call('HMGET', KEYS[1], 'owner', 'epoch')
if s[1] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[4], ARGV[7])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], s[2] .. ' ' .. ARGV[3], 'EX', ARGV[4])
presence(ARGV[5], KEYS[4], 'leave', ARGV[6], ARGV[8])
return 1
