-- heartbeat: extend an active lease to at least now + ttl.
-- ARGV[1] stream_id, ARGV[2] ttl_ms
-- reply: {1, now_ms, expires_ms, info}; {2, now_ms, "<evicted_at>|<replaced_by>"} when it was
-- evicted within a lease TTL; {0, now_ms} when it is not active
local now = now_ms()
purge(now)
local sid = ARGV[1]
local score = redis.call('ZSCORE', KEYS[1], sid)
if not score then
  local at, by, til = string.match(redis.call('HGET', KEYS[4], sid) or '', '^(%d+)|(.*)|(%d+)$')
  if til and tonumber(til) <= now then
    redis.call('HDEL', KEYS[4], sid)
  elseif at then
    return {2, now, at .. '|' .. by}
  end
  return {0, now}
end
local expires = math.max(tonumber(score), now + tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], 'XX', int(expires), sid)
touch()
return {1, now, expires, redis.call('HGET', KEYS[2], sid)}
