-- SPDX-License-Identifier: ISC
-- racerd: helpers every store script starts with (lua2c.sh puts them
-- in front of each script; a script uses what it needs).

-- A presence frame on channel ch, while the chat has at most max
-- sessions (its :who hash who; max 0: always): a big chat's members read
-- presence over HTTP instead of getting N events for N joins.
local function presence(ch, who, event, user, max)
  max = tonumber(max)
  if max == 0 or redis.call('HLEN', who) <= max then
    redis.call('PUBLISH', ch, '! ' .. cjson.encode({type = 'presence',
        event = event, user = user}))
  end
end

-- A key is kept until at least at (ms); its expiry only moves later.
local function keep(key, at)
  local cur = redis.call('PEXPIRETIME', key)
  if cur == -1 or (cur >= 0 and cur < at) then
    redis.call('PEXPIREAT', key, at)
  end
end

