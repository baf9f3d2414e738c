-- stop: remove one active lease, the given one or (ARGV[1] == '') the oldest by started_at.
-- KEYS[1] leases, KEYS[2] info
-- ARGV[1] stream_id or ''
-- reply: {1, now_ms, active_after, id, expires_ms, info} or {0, now_ms, active}
local now = now_ms()
purge(now)
local sid = ARGV[1]
if sid == '' then
  local oldest, oldest_started = nil, nil
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    local started = tonumber(string.match(all[i + 1], '^%d+'))
    if oldest == nil or started < oldest_started
        or (started == oldest_started and bytes_lt(all[i], oldest)) then
      oldest, oldest_started = all[i], started
    end
  end
  sid = oldest
end
local score = sid and redis.call('ZSCORE', KEYS[1], sid)
if not score then
  return {0, now, redis.call('ZCARD', KEYS[1])}
end
local info = redis.call('HGET', KEYS[2], sid)
redis.call('ZREM', KEYS[1], sid)
redis.call('HDEL', KEYS[2], sid)
touch()
return {1, now, redis.call('ZCARD', KEYS[1]), sid, tonumber(score), info}
