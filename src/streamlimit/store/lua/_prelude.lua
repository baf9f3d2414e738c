-- Shared prelude, prepended to every script that touches leases.
-- KEYS[1] leases: sorted set, member = stream_id, score = expiry (ms, store clock)
-- KEYS[2] info:   hash, stream_id -> "<started_ms>" or "<started_ms>|<device>"
-- invariant: after purge() no member with score <= now survives, and the hash has
-- exactly the sorted set's members; both keys expire when their last lease does.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- a < b by bytes, like Python's str order for ASCII ids (Lua's < follows the locale)
local function bytes_lt(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

local function int(x)
  return string.format('%d', x)
end

local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  if #dead == 0 then
    return
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  for i = 1, #dead, 500 do
    redis.call('HDEL', KEYS[2], unpack(dead, i, math.min(i + 499, #dead)))
  end
end

-- expire both keys with the latest lease, so an idle user leaves nothing behind
local function touch()
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', KEYS[1], last[2])
    redis.call('PEXPIREAT', KEYS[2], last[2])
  end
end

-- flat list of active leases: id, expires_ms, info, ...
local function leases()
  local out = {}
  local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  if #members == 0 then
    return out
  end
  local ids = {}
  for i = 1, #members, 2 do
    ids[#ids + 1] = members[i]
  end
  local infos = redis.call('HMGET', KEYS[2], unpack(ids))
  for i = 1, #ids do
    out[#out + 1] = ids[i]
    out[#out + 1] = tonumber(members[i * 2])
    out[#out + 1] = infos[i] or '0'
  end
  return out
end

local function limit_of(default)
  local v = redis.call('GET', KEYS[3])
  if v then
    return tonumber(v), 0
  end
  return tonumber(default), 1
end
