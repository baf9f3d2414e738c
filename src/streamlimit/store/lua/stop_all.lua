-- stop_all: remove every lease of the user ("sign out of all devices").
-- KEYS[1] leases, KEYS[2] info
-- reply: number of leases that were active
local now = now_ms()
purge(now)
local n = redis.call('ZCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return n
