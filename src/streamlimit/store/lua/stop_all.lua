-- stop_all: remove every lease of the user ("sign out of all devices"), and record it.
-- ARGV[1] actor
-- reply: number of leases that were active
local now = now_ms()
purge(now)
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2])
record(now, 'stopped_all', ARGV[1], ids)
return #ids
