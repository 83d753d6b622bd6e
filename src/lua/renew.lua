-- SPDX-License-Identifier: ISC
-- racerd: renew the leases of a worker's attached sessions.
--
-- KEYS[1] due
-- ARGV[1] new deadline (ms), ARGV[2] slack (ms) that records outlive
-- their deadline by, ARGV[3] presence-events-max, then (due member, owner,
-- last seq) for each session.
-- Returns 0.  A session still owned by that connection gets the new
-- deadline and position; one that was taken over or ended is left alone.
-- One the sweep turned away while the store could not be renewed in time
-- is attached again (presence "back"): its connection is alive.
for i = 4, #ARGV, 3 do
  local chat, token = string.match(ARGV[i], '^(%S+) (%S+)$')
  local pre = 'racerd:{chat:' .. (chat or '') .. '}'
  local sk = pre .. ':sess:' .. (token or '')
  if chat and redis.call('HGET', sk, 'owner') == ARGV[i + 1] then
    local s = redis.call('HMGET', sk, 'state', 'user')
    if s[1] ~= 'attached' then
      redis.call('HSET', sk, 'state', 'attached')
      redis.call('HSET', pre .. ':who', token, 'connected ' .. s[2])
      presence(pre, pre .. ':who', 'back', s[2], ARGV[3])
    end
    redis.call('HSET', sk, 'last', ARGV[i + 2])
    redis.call('PEXPIREAT', sk, ARGV[1] + ARGV[2])
    keep(pre .. ':who', ARGV[1] + ARGV[2])
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
  end
end
return 0
