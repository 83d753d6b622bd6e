-- SPDX-License-Identifier: ISC
-- racerd: where a chat is, creating its epoch if it has none.
--
-- KEYS[1] seq, KEYS[2] epoch, KEYS[3] log
-- ARGV[1] a fresh epoch, ARGV[2] how long (ms) an epoch without messages
-- is kept: a chat that is joined and never written to leaves nothing
-- behind (publish.lua keeps the epoch as long as the history).
-- Returns {latest seq, epoch}.
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch, 'PX', ARGV[2])
  redis.call('DEL', KEYS[1], KEYS[3])
end
local seq = redis.call('GET', KEYS[1]) or 0
return {tonumber(seq), epoch}
