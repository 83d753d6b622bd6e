-- SPDX-License-Identifier: ISC
-- racerd: end what is due in the schedule of sessions.
--
-- KEYS[1] due (sorted set of "CHAT TOKEN" by deadline)
-- ARGV[1] now (ms), ARGV[2] reconnect-window (ms), ARGV[3] pos ttl (s),
-- ARGV[4] slack (ms) that records outlive their deadline by, ARGV[5] the
-- most sessions to look at in one call, ARGV[6] presence-events-max
-- Returns {sessions ended, sessions looked at}: as many looked at as
-- asked means more may be due.
-- An attached session whose lease lapsed (its worker or host died) turns
-- away; an away one past its window ends, leaving the user's position.
-- Keys are built here from the member, as bus.c builds them:
-- racerd:{chat:CHAT}:sess:TOKEN, :who, :pos:USER; channel racerd:{chat:CHAT}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],
    'LIMIT', 0, tonumber(ARGV[5]))
local n = 0
for _, m in ipairs(due) do
  local chat, token = string.match(m, '^(%S+) (%S+)$')
  local pre = 'racerd:{chat:' .. (chat or '') .. '}'
  local sk = pre .. ':sess:' .. (token or '')
  local s = redis.call('HMGET', sk, 'state', 'user', 'epoch', 'last')
  if not chat or not s[1] then
    redis.call('ZREM', KEYS[1], m)
  elseif s[1] == 'attached' then
    local deadline = tonumber(ARGV[1]) + tonumber(ARGV[2])
    redis.call('HSET', sk, 'state', 'away')
    redis.call('PEXPIREAT', sk, deadline + ARGV[4])
    redis.call('HSET', pre .. ':who', token, 'away ' .. s[2])
    keep(pre .. ':who', deadline + ARGV[4])
    redis.call('ZADD', KEYS[1], deadline, m)
    presence(pre, pre .. ':who', 'away', s[2], ARGV[6])
  else
    redis.call('SET', pre .. ':pos:' .. s[2], s[3] .. ' ' .. s[4],
        'EX', ARGV[3])
    redis.call('DEL', sk)
    redis.call('HDEL', pre .. ':who', token)
    redis.call('ZREM', KEYS[1], m)
    presence(pre, pre .. ':who', 'leave', s[2], ARGV[6])
    n = n + 1
  end
end
return {n, #due}
