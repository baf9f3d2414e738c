-- limit: read, set or clear the per-user limit override or plan (no TTL), recording changes.
local op, value = ARGV[1], ARGV[2] -- op 'get' | 'set' | 'clear' | 'plan' | 'unplan'
local default, plans, hint, actor = ARGV[3], ARGV[4], ARGV[5], ARGV[8] -- (6, 7: how devices count); actor: JSON
-- reply: {limit, source, plan} after the change
-- reads
local s = redis.call('HMGET', SETTINGS, 'limit', 'plan')
local override, admin_plan = s[1], s[2]
if op == 'set' then
  override = value
elseif op == 'clear' then
  override = nil
elseif op == 'plan' then
  admin_plan = value
elseif op == 'unplan' then
  admin_plan = nil
end
local limit, source, plan = limit_from(override, admin_plan, default, plans, hint)
if op == 'get' then
  return {limit, source, plan}
end
local now = now_ms()
-- writes
if op == 'set' then
  redis.call('HSET', SETTINGS, 'limit', value)
  record(now, 'limit_set', actor, {}, value)
elseif op == 'clear' then
  redis.call('HDEL', SETTINGS, 'limit')
  record(now, 'limit_cleared', actor, {})
elseif op == 'plan' then
  redis.call('HSET', SETTINGS, 'plan', value)
  record(now, 'plan_set', actor, {}, value)
else
  redis.call('HDEL', SETTINGS, 'plan')
  record(now, 'plan_cleared', actor, {})
end
return {limit, source, plan}
