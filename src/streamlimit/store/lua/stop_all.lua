-- stop_all: remove every lease of the user ("sign out of all devices"), each with a tombstone, and
-- record them, oldest first (nothing is recorded when nothing was active).
local ttl, actor = tonumber(ARGV[1]), ARGV[2]
-- reply: {now_ms, id, ...} the leases that were active, oldest first
-- reads
local now = now_ms()
local state = load_leases(now)
local ids = {}
for i, l in ipairs(state.alive) do
  ids[i] = l.id
end
if #ids == 0 then
  return {now}
end
local ended_pttl = redis.call('PTTL', ENDED)
-- writes
redis.call('ZREM', LEASES, unpack(ids))
redis.call('HDEL', INFO, unpack(ids))
for _, sid in ipairs(ids) do
  bury(sid, now, ttl, 'stopped_all', '', ended_pttl)
end
record(now, 'stopped_all', actor, ids)
settle(state.dead, nil)
return append({now}, ids)
