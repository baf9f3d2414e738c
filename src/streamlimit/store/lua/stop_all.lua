-- stop_all: remove every lease of the user ("sign out of all devices"), each with a tombstone, and
-- record them, oldest first (nothing is recorded when nothing was active); each call spends one
-- of the user's stop-all budget.
local ttl, actor, per_min = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]) -- actor: JSON
-- reply: {now_ms, 0, id, ...} the leases that were active, oldest first; {now_ms, retry_after_ms}
-- when the budget is spent
-- reads
local now = now_ms()
local wait, tat = budget(redis.call('GET', STOPS), now, per_min)
if wait > 0 then
  return {now, wait}
end
local state = load_leases(now)
local ids, kinds = {}, {}
for i, l in ipairs(state.alive) do
  ids[i], kinds[i] = l.id, l.kind
end
local ended = #ids > 0 and load_ended(now) or nil
-- writes
spend(STOPS, tat, now)
if #ids == 0 then
  return {now, 0}
end
redis.call('ZREM', LEASES, unpack(ids))
redis.call('HDEL', INFO, unpack(ids))
for i, sid in ipairs(ids) do
  bury(sid, kinds[i], now, now + ttl, 'stopped_all', '', ended, now)
end
record(now, 'stopped_all', actor, ids)
settle(state.dead, nil)
kick(now, 'stopped_all', '', ids)
return append({now, 0}, ids)
