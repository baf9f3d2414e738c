-- renew: the live channels' batch renewal (streamlimit.live). Runs without the shared prelude: it
-- touches a few keys per lease and none of the prelude's functions.
-- Each active lease is extended to at least now + ttl, as a heartbeat renews it; a lease that is
-- not active is reported, with its tombstone if it has one, and nothing is admitted again. The
-- leases may belong to many users (on a Cluster, of one slot).
-- KEYS: per lease, its user's leases (sorted set), info (hash) and ended (hash) keys (lua/_prelude.lua)
local ttl = tonumber(ARGV[1]) -- ms; then ARGV[i + 1]: the stream id of the i-th lease
-- reply: {now_ms, r_1, ..., r_n}: r = expires_ms (renewed), '<at_ms>|<reason>|<by>' (ended within a
-- lease TTL), 0 (not active, no tombstone)
-- invariants (as every script's, lua/_prelude.lua): every read before the first write; the lease
-- keys' expiry is moved only when a lease outgrows it, to a lease TTL past that lease
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #ARGV - 1
local reply, renewed, outgrown = {now}, {}, {}
-- reads
for i = 1, n do
  local score = tonumber(redis.call('ZSCORE', KEYS[i * 3 - 2], ARGV[i + 1]))
  if score and score > now then
    local expires = math.max(score, now + ttl)
    reply[i + 1], renewed[#renewed + 1] = expires, i
    outgrown[i] = tonumber(redis.call('PEXPIRETIME', KEYS[i * 3 - 2])) < expires
  else
    local raw = redis.call('HGET', KEYS[i * 3], ARGV[i + 1])
    local at, til, rest = string.match(raw or '', '^(%d+)|(%d+)|(.*)$')
    reply[i + 1] = (til and tonumber(til) > now) and (at .. '|' .. rest) or 0
  end
end
-- writes: the expiries first (a store at maxmemory accepts them, and then the rest of the script)
for _, i in ipairs(renewed) do
  if outgrown[i] then
    local until_ms = string.format('%d', reply[i + 1] + ttl)
    redis.call('PEXPIREAT', KEYS[i * 3 - 2], until_ms, 'GT')
    redis.call('PEXPIREAT', KEYS[i * 3 - 1], until_ms, 'GT')
  end
end
for _, i in ipairs(renewed) do
  redis.call('ZADD', KEYS[i * 3 - 2], 'XX', 'GT', string.format('%d', reply[i + 1]), ARGV[i + 1])
end
return reply
