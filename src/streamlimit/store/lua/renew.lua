-- renew: the live channels' batch renewal (streamlimit.live). Runs without the shared prelude: it
-- touches a few keys per lease and none of the prelude's functions.
-- Each active lease is extended to at least now + ttl, as a heartbeat renews it; a lease that is
-- not active is reported, with its tombstone if it has one, and nothing is admitted again. The
-- leases may belong to many users (on a Cluster, of one slot).
-- KEYS: per lease, its user's leases (sorted set), info (hash) and ended (hash) keys (lua/_prelude.lua)
local ttl = tonumber(ARGV[1]) -- ms; then ARGV[i + 1]: the stream id of the i-th lease
-- reply: {now_ms, r_1, ..., r_n}: r = expires_ms (renewed), '<at_ms>|<reason>|<by>' (ended within a
-- lease TTL), 0 (not active, no tombstone)
-- invariant (as every script): every read before the first write, and both lease keys expire with
-- their latest lease (PEXPIREAT ... GT keeps the later of the two)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #ARGV - 1
local reply, renewed = {now}, {}
-- reads
for i = 1, n do
  local score = tonumber(redis.call('ZSCORE', KEYS[i * 3 - 2], ARGV[i + 1]))
  if score and score > now then
    local expires = math.max(score, now + ttl)
    reply[i + 1], renewed[#renewed + 1] = expires, i
  else
    local raw = redis.call('HGET', KEYS[i * 3], ARGV[i + 1])
    local at, til, rest = string.match(raw or '', '^(%d+)|(%d+)|(.*)$')
    reply[i + 1] = (til and tonumber(til) > now) and (at .. '|' .. rest) or 0
  end
end
-- writes: the expiries first (a store at maxmemory accepts them, and then the rest of the script)
local until_ms = string.format('%d', now + ttl)
for _, i in ipairs(renewed) do
  redis.call('PEXPIREAT', KEYS[i * 3 - 2], until_ms, 'GT')
  redis.call('PEXPIREAT', KEYS[i * 3 - 1], until_ms, 'GT')
  redis.call('ZADD', KEYS[i * 3 - 2], 'XX', 'GT', until_ms, ARGV[i + 1])
end
return reply
