-- limit: read, set or clear the per-user limit override (persists until cleared, no TTL).
-- KEYS[1] leases (unused, keeps one key layout), KEYS[2] info (unused), KEYS[3] limit override
-- ARGV[1] 'get' | 'set' | 'clear', ARGV[2] new limit (for 'set'), ARGV[3] default limit
-- reply: {limit, is_default (0/1)}
local op = ARGV[1]
if op == 'set' then
  redis.call('SET', KEYS[3], ARGV[2])
elseif op == 'clear' then
  redis.call('DEL', KEYS[3])
end
local limit, is_default = limit_of(ARGV[3])
return {limit, is_default}
