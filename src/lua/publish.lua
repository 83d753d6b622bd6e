-- SPDX-License-Identifier: ISC
-- racerd: publish messages, of one chat or several, in one call.
--
-- ARGV[1] history-size, ARGV[2] dedup-window (s), ARGV[3] now (ms),
-- ARGV[4] history-ttl (ms, 0: none), ARGV[5] "1": hold the channel
-- messages back (the caller publishes them after WAIT); then five per
-- message: the number of its keys (3, or 4 with a dedup key), envelope
-- head and tail (the envelope is head .. seq .. tail), a fresh epoch and
-- the chat's channel.  KEYS are each message's seq, epoch, log (stream)
-- and, if it has one, dedup key, in the same order.
-- Returns one answer per message, in order: {1, seq, epoch} for a new
-- message ({1, seq, epoch, message} when held), or {0, seq, epoch,
-- envelope} (envelope false if trimmed) for an id already seen, or
-- {-1, error} for a message the store refused.
--
-- Stream entries are {m: envelope, t: ms}, with the seq as entry id.  With
-- a ttl, entries older than it are trimmed (the oldest is looked at every
-- 32nd message, which keeps the cost off the common path) and the chat
-- (seq, epoch and stream) expires when it is idle that long (and at most
-- a 64th longer); without one
-- the chat's three keys stay, the stream trimmed to history-size.  The
-- message goes out on the channel as "EPOCH SEQ ENVELOPE".
local size, window, nowstr = ARGV[1], ARGV[2], ARGV[3]
local now = tonumber(nowstr)
local ttl, hold = tonumber(ARGV[4]), ARGV[5] == '1'
-- The chat's keys live from ttl to ttl + slack past its last message:
-- their expiry is set again only when it is out of that range, one PTTL
-- per message instead of three PEXPIRE writes (and their AOF records).
local slack = math.floor(ttl / 64)

local function trim(log)
  local cutoff = now - ttl
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  if first[1] and tonumber(first[1][2][4] or '0') < cutoff then
    local old = redis.call('XRANGE', log, '-', '+', 'COUNT', 1000)
    local keep = nil
    for _, x in ipairs(old) do
      if tonumber(x[2][4] or '0') >= cutoff then keep = x[1] break end
    end
    if not keep then
      keep = (tonumber(string.match(old[#old][1], '^%d+')) + 1) .. '-0'
    end
    redis.call('XTRIM', log, 'MINID', keep)
  end
end

-- One message: its keys, head, tail, fresh epoch and channel.
local function publish(kseq, kepoch, klog, kdedup, head, tail, fresh, ch)
  local epoch = redis.call('GET', kepoch)
  if not epoch then
    epoch = fresh
    redis.call('SET', kepoch, epoch)
    redis.call('DEL', kseq, klog)
  end
  if kdedup then
    local prev = redis.call('GET', kdedup)
    if prev then
      local e = redis.call('XRANGE', klog, prev .. '-0', prev .. '-0')
      local env = false
      if e[1] then env = e[1][2][2] end
      return {0, tonumber(prev), epoch, env}
    end
  end
  local n = redis.call('INCR', kseq)
  local seq = tostring(n)
  if ttl > 0 and n % 32 == 1 then trim(klog) end
  local env = head .. seq .. tail
  redis.call('XADD', klog, 'MAXLEN', size, seq .. '-0', 'm', env,
      't', nowstr)
  if ttl > 0 then
    local left = redis.call('PTTL', klog)
    if left < ttl or left > ttl + slack then
      redis.call('PEXPIRE', kseq, ttl + slack)
      redis.call('PEXPIRE', kepoch, ttl + slack)
      redis.call('PEXPIRE', klog, ttl + slack)
    end
  else
    redis.call('PERSIST', kepoch)
  end
  if kdedup then redis.call('SET', kdedup, seq, 'EX', window) end
  local msg = epoch .. ' ' .. seq .. ' ' .. env
  if hold then return {1, n, epoch, msg} end
  redis.call('PUBLISH', ch, msg)
  return {1, n, epoch}
end

local out, k, a = {}, 1, 6
while ARGV[a] do
  local n = tonumber(ARGV[a])
  local kdedup = false
  if n == 4 then kdedup = KEYS[k + 3] end
  -- A message that fails fails alone: the ones before it are written
  -- (a script is not rolled back) and must not be refused.
  local ok, r = pcall(publish, KEYS[k], KEYS[k + 1], KEYS[k + 2], kdedup,
      ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
  if not ok then
    if type(r) == 'table' then r = r.err or 'error' end
    r = {-1, tostring(r)}
  end
  out[#out + 1] = r
  k = k + n
  a = a + 5
end
return out
