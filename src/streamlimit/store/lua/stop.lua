-- stop: remove one active lease, the given one or (ARGV[1] == '') the oldest by started_at.
-- ARGV[1] stream_id or '', ARGV[2] actor, ARGV[3] '1': record 'stopped_by_admin'
-- reply: {1, now_ms, active_after, id, expires_ms, info} or {0, now_ms, active}
local now = now_ms()
purge(now)
local sid = ARGV[1]
if sid == '' then
  sid = oldest()
end
local score = sid and redis.call('ZSCORE', KEYS[1], sid)
if not score then
  return {0, now, redis.call('ZCARD', KEYS[1])}
end
local info = redis.call('HGET', KEYS[2], sid)
redis.call('ZREM', KEYS[1], sid)
redis.call('HDEL', KEYS[2], sid)
touch()
if ARGV[3] == '1' then
  record(now, 'stopped_by_admin', ARGV[2], {sid})
end
return {1, now, redis.call('ZCARD', KEYS[1]), sid, tonumber(score), info}
