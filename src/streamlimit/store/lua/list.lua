-- list: the user's active leases and effective limit.
local default, plans, hint = ARGV[1], ARGV[2], ARGV[3] -- (4, 5: how devices count, not needed here)
-- reply: {now_ms, limit, source, plan, id, expires_ms, info, ...} oldest first
-- reads
local now = now_ms()
local state = load_leases(now)
local limit, source, plan = limit_of(default, plans, hint)
-- writes
if #state.dead > 0 then
  settle(state.dead, state.last)
end
return append({now, limit, source, plan}, flat(state.alive))
