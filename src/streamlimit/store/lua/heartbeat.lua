-- heartbeat: extend an active lease to at least now + ttl.
-- KEYS[1] leases, KEYS[2] info
-- ARGV[1] stream_id, ARGV[2] ttl_ms
-- reply: {1, now_ms, expires_ms, info} or {0, now_ms} when not active
local now = now_ms()
purge(now)
local sid = ARGV[1]
local score = redis.call('ZSCORE', KEYS[1], sid)
if not score then
  return {0, now}
end
local expires = math.max(tonumber(score), now + tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], 'XX', int(expires), sid)
touch()
return {1, now, expires, redis.call('HGET', KEYS[2], sid)}
