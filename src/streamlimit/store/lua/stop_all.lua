-- stop_all: remove every lease of the user ("sign out of all devices"), and record them, oldest first.
-- ARGV[1] actor
-- reply: number of leases that were active
local now = now_ms()
purge(now)
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local started = {}
if #ids > 0 then
  local infos = redis.call('HMGET', KEYS[2], unpack(ids))
  for i = 1, #ids do
    started[ids[i]] = tonumber(string.match(infos[i] or '0', '^%d+'))
  end
  redis.call('HDEL', KEYS[2], unpack(ids))
end
table.sort(ids, function(a, b) -- oldest first, as every listing
  if started[a] ~= started[b] then
    return started[a] < started[b]
  end
  return bytes_lt(a, b)
end)
redis.call('DEL', KEYS[1])
touch() -- keeps '#epoch' a moment
record(now, 'stopped_all', ARGV[1], ids)
return #ids
