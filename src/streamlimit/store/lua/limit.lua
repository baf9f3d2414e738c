-- limit: read, set or clear the per-user limit override or plan (no TTL), recording changes.
-- ARGV[1] 'get' | 'set' | 'clear' | 'plan' | 'unplan', ARGV[2] new limit or plan,
-- ARGV[3] default limit, ARGV[4] plans, ARGV[5] plan hint, ARGV[6] actor
-- reply: {limit, source, plan}
local op = ARGV[1]
if op == 'set' then
  redis.call('HSET', KEYS[3], 'limit', ARGV[2])
  record(now_ms(), 'limit_set', ARGV[6], {})
elseif op == 'clear' then
  redis.call('HDEL', KEYS[3], 'limit')
  record(now_ms(), 'limit_cleared', ARGV[6], {})
elseif op == 'plan' then
  redis.call('HSET', KEYS[3], 'plan', ARGV[2])
elseif op == 'unplan' then
  redis.call('HDEL', KEYS[3], 'plan')
end
local limit, source, plan = limit_of(ARGV[3], ARGV[4], ARGV[5])
return {limit, source, plan}
