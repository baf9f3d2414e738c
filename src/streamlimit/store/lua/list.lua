-- list: the user's active leases and effective limit.
-- KEYS[1] leases, KEYS[2] info, KEYS[3] limit override
-- ARGV[1] default limit
-- reply: {now_ms, limit, is_default (0/1), id, expires_ms, info, id, ...}
local now = now_ms()
purge(now)
local limit, is_default = limit_of(ARGV[1])
local reply = {now, limit, is_default}
for _, v in ipairs(leases()) do
  reply[#reply + 1] = v
end
return reply
