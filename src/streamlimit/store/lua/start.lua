-- start: renew the stream if already active; else end what the start replaces (the stream it
-- names, or when devices are counted that stream's whole device unless it is the start's own;
-- and its own device's oldest
-- streams beyond per_device), then admit it if it fits the limit (evicting the oldest streams, or
-- whole devices but never its own, when asked), else refuse; admissions spend the start budget.
local stream_id, device_suffix, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]) -- suffix '' or '|<device>'
local default, plans, hint, by_device, per_device = ARGV[4], ARGV[5], ARGV[6], ARGV[7] == '1', tonumber(ARGV[8])
local evict, actor, per_min, kind = ARGV[9] == '1', ARGV[10], tonumber(ARGV[11]), ARGV[12] -- actor: JSON, kind v|l
local device_id, target_id = ARGV[13], ARGV[14] -- '' when none
-- reply: {status, now_ms, limit, active (what the limit counts), source, plan, <by status>}
--   1 admitted: expires_ms, info, #evicted, then id, expires_ms, info of each evicted lease, then
--               of each replaced one (same device), each oldest first
--   2 renewed:  expires_ms, info
--   0 refused:  id, expires_ms, info of each active lease, oldest first
--   3 too many starts: retry_after_ms
--   4 the stream to replace is not active (nothing done)
-- reads
local now = now_ms()
local state = load_leases(now)
local alive = state.alive
local limit, source, plan = limit_of(default, plans, hint)
local active = count(alive, by_device)
for _, l in ipairs(alive) do
  if l.id == stream_id then
    local expires = math.max(l.expires, now + ttl)
    -- writes (the expiry first: a store at maxmemory refuses only a first write that grows memory)
    settle(state.dead, math.max(state.last, expires))
    redis.call('ZADD', LEASES, int(expires), stream_id)
    return {2, now, limit, active, source, plan, expires, l.info}
  end
end
local gone = {} -- id -> 'evicted' | 'replaced'
local new_slot = device_id ~= '' and ('d:' .. device_id) or ('s:' .. stream_id)
if target_id ~= '' then
  local target = nil
  for _, l in ipairs(alive) do
    if l.id == target_id then
      target = l
    end
  end
  if not target then
    return {4, now, limit, active, source, plan}
  end
  local whole = by_device and slot_of(target) ~= new_slot -- another device: all of it
  for _, l in ipairs(alive) do
    if l.id == target_id or (whole and slot_of(l) == slot_of(target)) then
      gone[l.id] = 'evicted'
    end
  end
end
if device_id ~= '' then
  local mine = {}
  for _, l in ipairs(alive) do
    if l.dev == device_id and not gone[l.id] then
      mine[#mine + 1] = l
    end
  end
  for i = 1, #mine - per_device + 1 do
    gone[mine[i].id] = 'replaced'
  end
end
local function need() -- what the limit counts once the new stream is in
  local left, shared = {}, false
  for _, l in ipairs(alive) do
    if not gone[l.id] then
      left[#left + 1] = l
      shared = shared or (by_device and slot_of(l) == new_slot)
    end
  end
  return count(left, by_device) + (shared and 0 or 1)
end
if need() > limit then
  if not evict or limit == 0 then
    -- writes, only when webhooks are on and none was queued this minute; pcall: a store at
    -- maxmemory refuses them, and the refusal must stand
    if HOOKS_MAX > 0 and not redis.call('GET', REACHED) then
      local wrote = redis.pcall('SET', REACHED, '1', 'PXAT', int(now + 60000))
      if type(wrote) ~= 'table' or not wrote.err then
        local dev = device_id ~= '' and device_id or nil
        redis.pcall('XADD', HOOKS, 'MAXLEN', '~', HOOKS_MAX, '*', 'u', HOOK_USER, 'e', cjson.encode({
          at = now, action = 'limit_reached', actor = cjson.decode(actor), streams = {stream_id},
          value = int(limit), device_id = dev, active = active}))
      end
    end
    return append({0, now, limit, active, source, plan}, flat(alive))
  end
  for _, l in ipairs(alive) do -- the oldest first
    if need() <= limit then
      break
    end
    if not gone[l.id] and not (by_device and slot_of(l) == new_slot) then
      for _, m in ipairs(alive) do
        if m.id == l.id or (by_device and slot_of(m) == slot_of(l)) then
          gone[m.id] = 'evicted'
        end
      end
    end
  end
end
local wait, tat = budget(redis.call('GET', RATE), now, per_min)
if wait > 0 then
  return {3, now, limit, active, source, plan, wait}
end
local epoch = next_epoch(epoch_now(), now)
local ended = next(gone) and load_ended(now) or nil
-- writes: the new lease first, a write that grows memory, so a store at maxmemory refuses the
-- start before anything was written
local info = info_of(now, epoch, kind, device_id, device_suffix)
redis.call('ZADD', LEASES, int(now + ttl), stream_id)
redis.call('HSET', INFO, stream_id, info, '#epoch', int(epoch))
spend(RATE, tat, now)
local evicted, replaced, left = {}, {}, {{id = stream_id, dev = device_id ~= '' and device_id or nil}}
local last = now + ttl
for _, l in ipairs(alive) do
  if gone[l.id] == 'evicted' then
    evicted[#evicted + 1] = l
  elseif gone[l.id] == 'replaced' then
    replaced[#replaced + 1] = l
  else
    left[#left + 1] = l
    last = math.max(last, l.expires)
  end
end
local reply = {1, now, limit, count(left, by_device), source, plan, now + ttl, info, #evicted}
for _, v in ipairs(evicted) do
  redis.call('ZREM', LEASES, v.id)
  redis.call('HDEL', INFO, v.id)
  bury(v.id, v.kind, now, now + ttl, 'evicted', stream_id, ended, now)
  record(now, 'evicted', actor, {v.id}, stream_id)
  append(reply, {v.id, v.expires, v.info})
end
for _, v in ipairs(replaced) do
  redis.call('ZREM', LEASES, v.id)
  redis.call('HDEL', INFO, v.id)
  bury(v.id, v.kind, now, now + ttl, 'replaced', stream_id, ended, now)
  record(now, 'replaced', actor, {v.id}, stream_id, device_id)
  append(reply, {v.id, v.expires, v.info})
end
-- its own tombstone last: dropped first, it could empty the hash, and a burial after would make
-- it again without the expiry it read
redis.call('HDEL', ENDED, stream_id)
settle(except(state.dead, stream_id), last)
kick(now, 'evicted', stream_id, ids_of(evicted))
kick(now, 'replaced', stream_id, ids_of(replaced))
kick(now, 'admitted', '', {stream_id})
return reply
