-- SPDX-License-Identifier: ISC
-- racerd: record the session of a plain join and hand over the position
-- the user left the chat at, if the store kept one.
--
-- KEYS[1] sess, KEYS[2] pos, KEYS[3] due, KEYS[4] who
-- ARGV[1] user, ARGV[2] owner, ARGV[3] epoch, ARGV[4] last seq,
-- ARGV[5] lease deadline (ms), ARGV[6] due member ("CHAT TOKEN"),
-- ARGV[7] channel, ARGV[8] token, ARGV[9] slack (ms): records outlive their
-- deadline by it, so that the sweep (expire.lua) finds them; it bounds
-- what a store keeps when no racerd sweeps at all; ARGV[10]
-- presence-events-max.
-- Returns the stored position "EPOCH SEQ" (deleted now), or nil.
-- Publishes the presence frame "! {join}" on the channel.
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'owner', ARGV[2],
    'epoch', ARGV[3], 'last', ARGV[4], 'state', 'attached')
redis.call('PEXPIREAT', KEYS[1], ARGV[5] + ARGV[9])
redis.call('HSET', KEYS[4], ARGV[8], 'connected ' .. ARGV[1])
keep(KEYS[4], ARGV[5] + ARGV[9])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
presence(ARGV[7], KEYS[4], 'join', ARGV[1], ARGV[10])
local pos = redis.call('GET', KEYS[2])
if pos then redis.call('DEL', KEYS[2]) end
return pos
