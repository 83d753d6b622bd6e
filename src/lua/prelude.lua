-- racerd: helpers every store script starts with (lua2c.sh puts them
-- in front of each script; a script uses what it needs).

-- A key is kept until at least at (ms); its expiry only moves later.
local function keep(key, at)
  local cur = redis.call('PEXPIRETIME', key)
  if cur == -1 or (cur >= 0 and cur < at) then
    redis.call('PEXPIREAT', key, at)
  end
end

