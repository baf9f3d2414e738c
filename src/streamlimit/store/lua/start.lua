-- start: admit a lease if a slot is free, renew it if already active, else refuse.
-- KEYS[1] leases, KEYS[2] info, KEYS[3] limit override (string integer)
-- ARGV[1] stream_id, ARGV[2] info suffix ('' or '|<device>'), ARGV[3] ttl_ms, ARGV[4] default limit
-- reply: {1 admitted | 2 renewed, now_ms, limit, active, expires_ms, info}
--        {0 refused, now_ms, limit, active, id, expires_ms, info, id, ...}
local now = now_ms()
purge(now)
local sid, ttl = ARGV[1], tonumber(ARGV[3])
local limit = limit_of(ARGV[4])
local score = redis.call('ZSCORE', KEYS[1], sid)
if score then
  local expires = math.max(tonumber(score), now + ttl)
  redis.call('ZADD', KEYS[1], int(expires), sid)
  touch()
  return {2, now, limit, redis.call('ZCARD', KEYS[1]), expires, redis.call('HGET', KEYS[2], sid)}
end
local active = redis.call('ZCARD', KEYS[1])
if active >= limit then
  local reply = {0, now, limit, active}
  for _, v in ipairs(leases()) do
    reply[#reply + 1] = v
  end
  return reply
end
local info = int(now) .. ARGV[2]
redis.call('ZADD', KEYS[1], int(now + ttl), sid)
redis.call('HSET', KEYS[2], sid, info)
touch()
return {1, now, limit, active + 1, now + ttl, info}
