-- SPDX-License-Identifier: ISC
-- racerd: claim a session token for a resuming connection.
--
-- KEYS[1] sess, KEYS[2] due, KEYS[3] who
-- ARGV[1] owner, ARGV[2] lease deadline (ms), ARGV[3] due member,
-- ARGV[4] channel, ARGV[5] token, ARGV[6] user ("" for any), ARGV[7] now (ms),
-- ARGV[8] slack (ms) that records outlive their deadline by,
-- ARGV[9] presence-events-max
-- Returns nil (unknown, or away past its deadline even before a sweep
-- ended it), "user" (someone else's session), or
-- {user, epoch, last, previous state, generation}.
-- Every claim bumps the session's generation and says so on the channel
-- ("K TOKEN GEN"): connections of that session with a lower generation
-- close with 4009, wherever they are.  An away session coming back
-- publishes the presence frame "! {back}".
local s = redis.call('HMGET', KEYS[1], 'user', 'epoch', 'last', 'state')
if not s[1] then return false end
if s[4] ~= 'attached' then
  local due = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[3]) or '0')
  if due < tonumber(ARGV[7]) then return false end
end
if ARGV[6] ~= '' and ARGV[6] ~= s[1] then return 'user' end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'state', 'attached')
redis.call('PEXPIREAT', KEYS[1], ARGV[2] + ARGV[8])
redis.call('HSET', KEYS[3], ARGV[5], 'connected ' .. s[1])
keep(KEYS[3], ARGV[2] + ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], 'K ' .. ARGV[5] .. ' ' .. gen)
if s[4] ~= 'attached' then
  presence(ARGV[4], KEYS[3], 'back', s[1], ARGV[9])
end
return {s[1], s[2], s[3], s[4], gen}
