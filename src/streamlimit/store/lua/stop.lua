-- stop: remove one active lease, the given one or (stream_id == '') the oldest legacy (compat)
-- one, and leave a tombstone so that a late heartbeat of it does not admit it again.
local stream_id, ttl, actor, by_admin = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1' -- actor: JSON
-- reply: {1, now_ms, active_after, id, expires_ms, info} or {0, now_ms, active}
-- reads
local now = now_ms()
local state = load_leases(now)
local target = nil
for _, l in ipairs(state.alive) do
  if (stream_id == '' and l.kind == 'l' and not target) or l.id == stream_id then
    target = l
  end
end
if not target then
  return {0, now, #state.alive}
end
local ended = load_ended(now)
-- writes
redis.call('ZREM', LEASES, target.id)
redis.call('HDEL', INFO, target.id)
bury(target.id, target.kind, now, now + ttl, by_admin and 'stopped_by_admin' or 'stopped', '', ended, now)
if by_admin then
  record(now, 'stopped_by_admin', actor, {target.id})
end
local last = nil
for _, l in ipairs(state.alive) do
  if l.id ~= target.id then
    last = math.max(last or 0, l.expires)
  end
end
settle(state.dead, last)
kick(now, by_admin and 'stopped_by_admin' or 'stopped', '', {target.id})
return {1, now, #state.alive - 1, target.id, target.expires, target.info}
