-- Shared prelude, prepended to every script. Every script gets the same six keys of one user:
-- KEYS[1] leases:   sorted set, member = stream_id, score = expiry (ms, store clock)
-- KEYS[2] info:     hash, stream_id -> "<started_ms>" or "<started_ms>|<device>", and the
--                   field '#epoch' (ids cannot contain '#')
-- KEYS[3] settings: hash {limit = per-user override, plan = plan set by an admin}; no TTL
-- KEYS[4] evicted:  hash, stream_id -> "<evicted_at_ms>|<replaced_by>|<until_ms>" (one lease TTL)
-- KEYS[5] events:   list of JSON audit events, newest first, the last 100, 30 days
-- KEYS[6] rate:     the start budget: GCRA theoretical arrival time (ms)
-- invariant: after purge() no member with score <= now survives, and the hash has
-- exactly the sorted set's members (plus '#epoch'); both expire when their last lease does (the
-- info key, left with only '#epoch' by a stop, a second later).
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
  else
    -- only '#epoch' is left: keep it past this millisecond, after which next_epoch's clock floor
    -- is above it anyway
    redis.call('PEXPIRE', KEYS[2], 1000)
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

-- override > plan (an admin's, then the caller's token's) > default: limit, source, plan name
-- plans: "basic=1,standard=2" (names are [A-Za-z0-9_]+, checked by the service)
local function limit_of(default, plans, hint)
  local s = redis.call('HMGET', KEYS[3], 'limit', 'plan')
  if s[1] then
    return tonumber(s[1]), 'user', s[2] or ''
  end
  for _, plan in ipairs({s[2] or '', hint or ''}) do
    if plan ~= '' then
      local v = string.match(',' .. plans .. ',', ',' .. plan .. '=(%d+),')
      if v then
        return tonumber(v), 'plan', plan
      end
    end
  end
  return tonumber(default), 'default', ''
end

-- the oldest active lease by started_at (ties: smaller id), or nil
local function oldest()
  local best, best_started = nil, nil
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 1) ~= '#' then
      local started = tonumber(string.match(all[i + 1], '^%d+'))
      if best == nil or started < best_started or (started == best_started and bytes_lt(all[i], best)) then
        best, best_started = all[i], started
      end
    end
  end
  return best
end

local function epoch_now()
  return tonumber(redis.call('HGET', KEYS[2], '#epoch') or '0')
end

-- grows with every admission, and never goes back even after the user's keys expired: at least
-- the store's clock in microseconds
local function next_epoch(now)
  local e = math.max(epoch_now() + 1, now * 1000)
  redis.call('HSET', KEYS[2], '#epoch', int(e))
  return e
end

local function record(now, action, actor, streams)
  redis.call('LPUSH', KEYS[5], cjson.encode({at = now, action = action, actor = actor, streams = streams}))
  redis.call('LTRIM', KEYS[5], 0, 99)
  redis.call('PEXPIRE', KEYS[5], 2592000000)
end

-- spend one start of the per-minute budget; 0, or the ms to wait when it is spent
local function spend_start(now, per_min)
  if per_min <= 0 then
    return 0
  end
  local period = 60000 / per_min
  local tat = math.max(tonumber(redis.call('GET', KEYS[6]) or '0'), now)
  local wait = tat + period - now - 60000
  if wait > 0 then
    return math.ceil(wait)
  end
  redis.call('SET', KEYS[6], int(tat + period), 'PX', math.max(1, math.ceil(tat + period - now)))
  return 0
end
