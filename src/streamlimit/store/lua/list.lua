-- list: the user's active leases and effective limit.
-- ARGV[1] default limit, ARGV[2] plans, ARGV[3] plan hint
-- reply: {now_ms, limit, source, plan, id, expires_ms, info, id, ...}
local now = now_ms()
purge(now)
local limit, source, plan = limit_of(ARGV[1], ARGV[2], ARGV[3])
local reply = {now, limit, source, plan}
for _, v in ipairs(leases()) do
  reply[#reply + 1] = v
end
return reply
