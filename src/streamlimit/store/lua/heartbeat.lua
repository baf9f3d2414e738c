-- heartbeat: extend an active lease to at least now + ttl; a stream that is not active and has no
-- tombstone is admitted again (a new lease and epoch) when a slot is free, without the budget; a
-- tombstone met by a heartbeat lasts at least a lease TTL more, so a device that keeps
-- heartbeating after it was evicted or stopped is never admitted again.
-- The renewal of an active lease, nearly every call, runs before the prelude (scripts.py puts it
-- at the '@prelude' line below): it touches two keys and needs none of the prelude's functions.
local stream_id, ttl = ARGV[1], tonumber(ARGV[2])
local default, plans, hint, by_device = ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1'
-- reply: {1, now_ms, expires_ms, info} renewed; {3, now_ms, expires_ms, info} admitted again;
-- {2, now_ms, at_ms, reason, by} ended (evicted or stopped) within a lease TTL; {0, now_ms} not
-- active and no slot free
-- reads
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = tonumber(redis.call('ZSCORE', KEYS[1], stream_id))
if score and score > now then
  local expires = math.max(score, now + ttl)
  local keys_until = tonumber(redis.call('PEXPIRETIME', KEYS[1]))
  local info = redis.call('HGET', KEYS[2], stream_id)
  -- writes: the keys' expiry only when the lease outgrows it, then a lease TTL past the lease
  -- (lua/_prelude.lua's invariant); the expiry first, which a store at maxmemory still accepts,
  -- and after which it accepts the script's other writes
  if keys_until < expires then
    local until_ms = string.format('%d', expires + ttl)
    redis.call('PEXPIREAT', KEYS[1], until_ms)
    redis.call('PEXPIREAT', KEYS[2], until_ms)
  end
  redis.call('ZADD', KEYS[1], 'XX', 'GT', string.format('%d', expires), stream_id)
  return {1, now, expires, info}
end
-- @prelude
local ended = ended_of(stream_id, now)
if ended then
  local kept = load_ended(now)
  -- writes
  bury(stream_id, 'v', ended.at, math.max(tonumber(ended.til), now + ttl), ended.reason, ended.by, kept, now)
  return {2, now, tonumber(ended.at), ended.reason, ended.by}
end
local state = load_leases(now)
local limit = limit_of(default, plans, hint)
if count(state.alive, by_device) >= limit then -- (it comes back with no device id: a device of its own)
  return {0, now}
end
local epoch = next_epoch(epoch_now(), now)
-- writes
local info = info_of(now, epoch, 'v', '', '')
redis.call('ZADD', LEASES, int(now + ttl), stream_id)
redis.call('HSET', INFO, stream_id, info, '#epoch', int(epoch))
redis.call('HDEL', ENDED, stream_id)
settle(except(state.dead, stream_id), math.max(state.last or 0, now + ttl))
kick(now, 'admitted', '', {stream_id})
return {3, now, now + ttl, info}
