-- start: admit a lease if a slot is free (or evict the oldest, as many as it takes to end at the
-- limit, when asked), renew it if already active, else refuse; admissions spend the start budget.
local stream_id, device_suffix, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]) -- suffix '' or '|<device>'
local default, plans, hint = ARGV[4], ARGV[5], ARGV[6]
local evict, actor, per_min, kind = ARGV[7] == '1', ARGV[8], tonumber(ARGV[9]), ARGV[10] -- actor: JSON, kind v|l
-- reply: {status, now_ms, limit, active, source, plan, <by status>}
--   1 admitted: expires_ms, info, then id, expires_ms, info of each evicted lease
--   2 renewed:  expires_ms, info
--   0 refused:  id, expires_ms, info of each active lease, oldest first
--   3 too many starts: retry_after_ms
-- reads
local now = now_ms()
local state = load_leases(now)
local limit, source, plan = limit_of(default, plans, hint)
local own = nil
for _, l in ipairs(state.alive) do
  if l.id == stream_id then
    own = l
  end
end
local active = #state.alive
if own then
  local expires = math.max(own.expires, now + ttl)
  -- writes (the expiry first: a store at maxmemory refuses only a first write that grows memory)
  settle(state.dead, math.max(state.last, expires))
  redis.call('ZADD', LEASES, int(expires), stream_id)
  return {2, now, limit, active, source, plan, expires, own.info}
end
if active >= limit and (not evict or limit == 0) then
  return append({0, now, limit, active, source, plan}, flat(state.alive))
end
local victims = {}
for i = 1, active - limit + 1 do
  victims[i] = state.alive[i]
end
local wait, tat = budget(redis.call('GET', RATE), now, per_min)
if wait > 0 then
  return {3, now, limit, active, source, plan, wait}
end
local epoch = next_epoch(epoch_now(), now)
local ended = #victims > 0 and load_ended(now) or nil
-- writes: the new lease first, a write that grows memory, so a store at maxmemory refuses the
-- start before anything was written
local info = info_of(now, epoch, kind, device_suffix)
redis.call('ZADD', LEASES, int(now + ttl), stream_id)
redis.call('HSET', INFO, stream_id, info, '#epoch', int(epoch))
redis.call('HDEL', ENDED, stream_id)
spend(RATE, tat, now)
local reply = {1, now, limit, active + 1 - #victims, source, plan, now + ttl, info}
local last = math.max(state.last or 0, now + ttl)
for _, v in ipairs(victims) do
  redis.call('ZREM', LEASES, v.id)
  redis.call('HDEL', INFO, v.id)
  bury(v.id, v.kind, now, now + ttl, 'evicted', stream_id, ended, now)
  record(now, 'evicted', actor, {v.id})
  append(reply, {v.id, v.expires, v.info})
end
if #victims > 0 then
  last = now + ttl
  for i = #victims + 1, active do
    last = math.max(last, state.alive[i].expires)
  end
end
settle(except(state.dead, stream_id), last)
return reply
