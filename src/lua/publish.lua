-- racerd: publish one message into a chat.
--
-- KEYS[1] seq, KEYS[2] epoch, KEYS[3] log (stream), KEYS[4] dedup (optional)
-- ARGV[1] envelope head, ARGV[2] envelope tail (the envelope is
--         head .. seq .. tail), ARGV[3] a fresh epoch, ARGV[4] history-size,
--         ARGV[5] dedup-window (s), ARGV[6] channel, ARGV[7] now (ms),
--         ARGV[8] history-ttl (ms, 0: none), ARGV[9] "1": hold the
--         channel message back (the caller publishes it after WAIT)
-- Returns {1, seq, epoch} for a new message ({1, seq, epoch, message}
-- when held), or {0, seq, epoch, envelope} (envelope false if trimmed)
-- for an id already seen.
--
-- Stream entries are {m: envelope, t: ms}, with the seq as entry id.  With
-- a ttl, entries older than it are trimmed (the oldest is looked at every
-- 32nd message, which keeps the cost off the common path) and the chat
-- (seq, epoch and stream) expires when it is idle that long; without one
-- the chat's three keys stay, the stream trimmed to history-size.  The
-- message goes out on the channel as "EPOCH SEQ ENVELOPE".
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[2], epoch)
  redis.call('DEL', KEYS[1], KEYS[3])
end
if KEYS[4] then
  local prev = redis.call('GET', KEYS[4])
  if prev then
    local e = redis.call('XRANGE', KEYS[3], prev .. '-0', prev .. '-0')
    local env = false
    if e[1] then env = e[1][2][2] end
    return {0, tonumber(prev), epoch, env}
  end
end
local seq = redis.call('INCR', KEYS[1])
local ttl = tonumber(ARGV[8])
if ttl > 0 and seq % 32 == 1 then
  local cutoff = tonumber(ARGV[7]) - ttl
  local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
  if first[1] and tonumber(first[1][2][4] or '0') < cutoff then
    local old = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1000)
    local keep = nil
    for _, x in ipairs(old) do
      if tonumber(x[2][4] or '0') >= cutoff then keep = x[1] break end
    end
    if not keep then
      keep = (tonumber(string.match(old[#old][1], '^%d+')) + 1) .. '-0'
    end
    redis.call('XTRIM', KEYS[3], 'MINID', keep)
  end
end
local env = ARGV[1] .. seq .. ARGV[2]
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[4], seq .. '-0', 'm', env,
    't', ARGV[7])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
else
  redis.call('PERSIST', KEYS[2])
end
if KEYS[4] then redis.call('SET', KEYS[4], seq, 'EX', ARGV[5]) end
local msg = epoch .. ' ' .. seq .. ' ' .. env
if ARGV[9] == '1' then return {1, seq, epoch, msg} end
redis.call('PUBLISH', ARGV[6], msg)
return {1, seq, epoch}
