-- start: admit a lease if a slot is free (or evict the oldest, when asked), renew it if
-- already active, else refuse; admissions spend the per-minute start budget.
-- ARGV[1] stream_id, ARGV[2] info suffix ('' or '|<device>'), ARGV[3] ttl_ms, ARGV[4] default
-- limit, ARGV[5] plans, ARGV[6] plan hint, ARGV[7] '1': evict the oldest when full,
-- ARGV[8] actor, ARGV[9] starts per minute (0: no budget)
-- reply (after the common head {status, now_ms, limit, active, source, plan, epoch}):
--   1 admitted: expires_ms, info[, evicted_id, evicted_expires_ms, evicted_info]
--   2 renewed:  expires_ms, info
--   0 refused:  id, expires_ms, info, id, ...
--   3 too many starts: retry_after_ms
local now = now_ms()
purge(now)
local sid, ttl = ARGV[1], tonumber(ARGV[3])
local limit, source, plan = limit_of(ARGV[4], ARGV[5], ARGV[6])
local score = redis.call('ZSCORE', KEYS[1], sid)
if score then
  local expires = math.max(tonumber(score), now + ttl)
  redis.call('ZADD', KEYS[1], int(expires), sid)
  touch()
  local active = redis.call('ZCARD', KEYS[1])
  return {2, now, limit, active, source, plan, epoch_now(), expires, redis.call('HGET', KEYS[2], sid)}
end
local active = redis.call('ZCARD', KEYS[1])
local victim = nil
if active >= limit then
  if ARGV[7] ~= '1' or limit == 0 then
    local reply = {0, now, limit, active, source, plan, epoch_now()}
    for _, v in ipairs(leases()) do
      reply[#reply + 1] = v
    end
    return reply
  end
  victim = oldest()
end
local wait = spend_start(now, tonumber(ARGV[9]))
if wait > 0 then
  return {3, now, limit, active, source, plan, epoch_now(), wait}
end
-- the new lease first: a store at maxmemory refuses a script's writes only until its first
-- one, so the first write must be one that grows memory (ZADD), not a removal
local info = int(now) .. ARGV[2]
redis.call('ZADD', KEYS[1], int(now + ttl), sid)
redis.call('HSET', KEYS[2], sid, info)
local evicted = {}
if victim then
  evicted = {victim, tonumber(redis.call('ZSCORE', KEYS[1], victim)), redis.call('HGET', KEYS[2], victim)}
  redis.call('ZREM', KEYS[1], victim)
  redis.call('HDEL', KEYS[2], victim)
  -- each tombstone carries its own end; the hash lives as long as its longest one
  redis.call('HSET', KEYS[4], victim, int(now) .. '|' .. sid .. '|' .. int(now + ttl))
  if redis.call('PTTL', KEYS[4]) < ttl then
    redis.call('PEXPIRE', KEYS[4], ttl)
  end
  record(now, 'evicted', ARGV[8], {victim})
  active = active - 1
end
redis.call('HDEL', KEYS[4], sid)
local epoch = next_epoch(now)
touch()
local reply = {1, now, limit, active + 1, source, plan, epoch, now + ttl, info}
for _, v in ipairs(evicted) do
  reply[#reply + 1] = v
end
return reply
