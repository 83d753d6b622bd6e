-- SPDX-License-Identifier: ISC
-- racerd: one page of a chat's history.
--
-- KEYS[1] seq, KEYS[2] epoch, KEYS[3] log
-- ARGV[1] since (exclusive), ARGV[2] before (exclusive, 0: none),
-- ARGV[3] limit, ARGV[4] now (ms), ARGV[5] history-ttl (ms, 0: none)
-- Returns {latest, epoch or false, seq1, envelope1, seq2, ...}, oldest
-- first: with before, the newest limit entries under it; else the oldest
-- over since.  Entries past the ttl that the publish script has not
-- trimmed yet are left out.
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = redis.call('GET', KEYS[2])
local e
if ARGV[2] ~= '0' then
  local low = '-'
  if ARGV[1] ~= '0' then low = '(' .. ARGV[1] .. '-0' end
  e = redis.call('XREVRANGE', KEYS[3], '(' .. ARGV[2] .. '-0', low,
      'COUNT', ARGV[3])
  local n = #e
  for i = 1, math.floor(n / 2) do e[i], e[n - i + 1] = e[n - i + 1], e[i] end
else
  e = redis.call('XRANGE', KEYS[3], '(' .. ARGV[1] .. '-0', '+',
      'COUNT', ARGV[3])
end
local out = {latest, epoch}
local cutoff = tonumber(ARGV[4]) - tonumber(ARGV[5])
for i, x in ipairs(e) do
  if ARGV[5] == '0' or tonumber(x[2][4] or '0') >= cutoff then
    out[#out + 1] = tonumber((string.gsub(x[1], '-0$', '')))
    out[#out + 1] = x[2][2]
  end
end
return out
