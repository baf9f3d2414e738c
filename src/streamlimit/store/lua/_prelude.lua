-- Shared prelude, prepended to every script. Every script gets the same eight keys of one user,
-- then the webhook queue, and its last three ARGV are the user's id, the queue's length (0: off)
-- and the user's live channel (a pub/sub shard channel sharing the user's slot; '': no kicks):
local LEASES = KEYS[1] -- sorted set, member = stream_id, score = expiry (ms, store clock)
local INFO = KEYS[2] -- hash, stream_id -> "<started_ms>|<e>|<kind>[<n>:<device_id>][|<device>]"
--                      (the lease's epoch is started_ms * 1000 + e, e >= 0 and almost always 0;
--                      kind 'v': v1, 'l': legacy/compat; n: the device id's length), and '#epoch'
--                      (ids cannot contain '#')
local SETTINGS = KEYS[3] -- hash {limit = per-user override, plan = plan set by an admin}; no TTL
local ENDED = KEYS[4] -- hash, stream_id -> "<at_ms>|<until_ms>|<reason>|<by>": a tombstone, kept
--                      until until_ms (one lease TTL); reason evicted|stopped|stopped_all|
--                      stopped_by_admin, by = the stream that replaced it ('' for stops)
local EVENTS = KEYS[5] -- list of JSON audit events, newest first, the last 100, 30 days
local RATE = KEYS[6] -- the start budget: GCRA theoretical arrival time (integer microseconds)
local STOPS = KEYS[7] -- the stop-all budget, the same way
local REACHED = KEYS[8] -- set while a limit_reached webhook was queued in the last minute
local HOOKS = KEYS[9] -- the webhook queue, a stream shared with other users (of this slot)
local HOOK_USER, HOOKS_MAX, LIVE = ARGV[#ARGV - 2], tonumber(ARGV[#ARGV - 1]), ARGV[#ARGV]
-- invariants: every script does all its reads before its first write, so a refused command (ACL,
-- maxmemory) aborts it before anything was written; the info hash has exactly the sorted set's
-- members (plus '#epoch'); both keys expire together, no sooner than their latest lease and no
-- later than a lease TTL after it (a renewal moves their expiry only when its lease outgrows it,
-- so most renewals write the lease alone; the info key, left with only '#epoch', a second after
-- the last lease ended); a script that settles leaves no member with score <= now (renewals leave
-- them to the next one: they are ignored as not alive meanwhile).
local EVENTS_KEPT, EVENTS_TTL_MS = 100, 2592000000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(x)
  return string.format('%d', x)
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

local function older(a, b) -- oldest first: by admission (epoch), then id
  if a.epoch ~= b.epoch then
    return a.epoch < b.epoch
  end
  return bytes_lt(a.id, b.id)
end

-- an epoch is at least its admission's clock in microseconds: store only what it adds to that
local function info_of(started, epoch, kind, device_id, device_suffix)
  local dev = device_id ~= '' and (#device_id .. ':' .. device_id) or ''
  return int(started) .. '|' .. int(epoch - started * 1000) .. '|' .. kind .. dev .. device_suffix
end

-- what a lease counts as when devices are counted: its device, or itself
local function slot_of(l)
  return l.dev and ('d:' .. l.dev) or ('s:' .. l.id)
end

-- how much of the limit the leases take: leases, or (by_device) their distinct devices
local function count(leases, by_device)
  if not by_device then
    return #leases
  end
  local seen, n = {}, 0
  for _, l in ipairs(leases) do
    local s = slot_of(l)
    if not seen[s] then
      seen[s], n = true, n + 1
    end
  end
  return n
end

-- reads: every lease of the user, {alive = oldest first, dead = ids expired by now, last = the
-- latest expiry of an alive lease or nil}; each alive lease {id, expires, info, started, epoch,
-- kind, dev (the device id or nil)}. A lease written before epochs were per lease
-- ("<started>[|<device>]") counts as admitted at its start.
local function load_leases(now)
  local members = redis.call('ZRANGE', LEASES, 0, -1, 'WITHSCORES')
  local state = {alive = {}, dead = {}, last = nil}
  if #members == 0 then
    return state
  end
  local ids = {}
  for i = 1, #members, 2 do
    ids[#ids + 1] = members[i]
  end
  local infos = redis.call('HMGET', INFO, unpack(ids))
  for i = 1, #ids do
    local expires = tonumber(members[i * 2])
    if expires <= now then
      state.dead[#state.dead + 1] = ids[i]
    else
      local info = infos[i] or '0|0|v'
      local started, extra, kind, n, at = string.match(info, '^(%d+)|(%d+)|([vl])(%d*)()')
      local dev = nil
      if not started then
        started, extra, kind = string.match(info, '^(%d+)') or '0', '0', 'v'
      elseif n ~= '' then
        dev = string.sub(info, at + 1, at + tonumber(n))
      end
      state.alive[#state.alive + 1] = {id = ids[i], expires = expires, info = info, dev = dev,
        started = tonumber(started), epoch = tonumber(started) * 1000 + tonumber(extra), kind = kind}
      state.last = expires
    end
  end
  table.sort(state.alive, older)
  return state
end

-- reads: override > plan (an admin's, then the caller's token's) > default: limit, source, plan
-- plans: "basic=1,standard=2" (names are [A-Za-z0-9_]+, checked by the service)
local function limit_from(override, admin_plan, default, plans, hint)
  if override then
    return tonumber(override), 'user', admin_plan or ''
  end
  for _, plan in ipairs({admin_plan or '', hint or ''}) do
    if plan ~= '' then
      local v = string.match(',' .. plans .. ',', ',' .. plan .. '=(%d+),')
      if v then
        return tonumber(v), 'plan', plan
      end
    end
  end
  return tonumber(default), 'default', ''
end

local function limit_of(default, plans, hint)
  local s = redis.call('HMGET', SETTINGS, 'limit', 'plan')
  return limit_from(s[1], s[2], default, plans, hint)
end

-- reads: the user's admission counter
local function epoch_now()
  return tonumber(redis.call('HGET', INFO, '#epoch') or '0')
end

-- the next admission's epoch: grows with every admission, and never goes back even after the
-- user's keys expired, as long as the store's clock does not: at least its clock in microseconds
local function next_epoch(last, now)
  return math.max(last + 1, now * 1000)
end

-- reads: the tombstone of a stream, {at, til, reason, by} while it lasts, else nil
local function ended_of(sid, now)
  local raw = redis.call('HGET', ENDED, sid)
  if not raw then
    return nil
  end
  local at, til, reason, by = string.match(raw, '^(%d+)|(%d+)|([%a_]+)|(.*)$')
  if not til or tonumber(til) <= now then
    return nil
  end
  return {at = at, til = til, reason = reason, by = by}
end

-- the expired members but one: a stream admitted again must not be dropped with its old lease
local function except(dead, id)
  local out = {}
  for _, d in ipairs(dead) do
    if d ~= id then
      out[#out + 1] = d
    end
  end
  return out
end

-- writes: drop the expired members (read by load_leases) and set both keys' expiry to the latest
-- lease's, or keep '#epoch' a second when none is left (next_epoch's clock floor is above it then)
local function settle(dead, last)
  if #dead > 0 then
    redis.call('ZREM', LEASES, unpack(dead))
    redis.call('HDEL', INFO, unpack(dead))
  end
  if last then
    redis.call('PEXPIREAT', LEASES, int(last))
    redis.call('PEXPIREAT', INFO, int(last))
  else
    redis.call('PEXPIRE', INFO, 1000)
  end
end

-- reads, before a script buries: the tombstone hash's PTTL, and which of up to 20 of its
-- tombstones, picked at random, have ended (so a burial's work is bounded whatever the hash holds,
-- and the hash keeps about one lease TTL's worth)
local function load_ended(now)
  local out = {pttl = redis.call('PTTL', ENDED), expired = {}}
  local sample = redis.call('HRANDFIELD', ENDED, 20, 'WITHVALUES')
  for i = 1, #sample, 2 do
    local til = tonumber(string.match(sample[i + 1], '^%d+|(%d+)|') or '0')
    if til <= now then
      out.expired[#out.expired + 1] = sample[i]
    end
  end
  return out
end

-- writes: remember why a v1 stream ended until until_ms (a legacy one, which nothing heartbeats,
-- leaves none); the hash lives as long as its longest tombstone, and each burial drops the ended
-- ones load_ended found (read before the first write)
local function bury(sid, kind, at, until_ms, reason, by, ended, now)
  if kind == 'l' then
    return
  end
  redis.call('HSET', ENDED, sid, int(at) .. '|' .. int(until_ms) .. '|' .. reason .. '|' .. by)
  if ended.pttl < until_ms - now then
    redis.call('PEXPIRE', ENDED, int(until_ms - now))
    ended.pttl = until_ms - now
  end
  if #ended.expired > 0 then
    redis.call('HDEL', ENDED, unpack(ended.expired))
    ended.expired = {}
  end
end

-- writes: queue a webhook event (store/hooks.py: {u = user, e = event JSON}) when they are on
local function notify(event)
  if HOOKS_MAX > 0 then
    redis.call('XADD', HOOKS, 'MAXLEN', '~', HOOKS_MAX, '*', 'u', HOOK_USER, 'e', cjson.encode(event))
  end
end

-- writes: one audit event, queued as a webhook too (but an admin's stop); actor: a JSON object
-- made by the service (name, role, credential, request id, client address), value: the new
-- limit or plan, or the stream that took an evicted or replaced one's slot, or nil; device_id:
-- the device whose stream was replaced, or nil
local function record(now, action, actor, streams, value, device_id)
  local event = {at = now, action = action, actor = cjson.decode(actor), streams = streams, value = value,
    device_id = device_id}
  redis.call('LPUSH', EVENTS, cjson.encode(event))
  redis.call('LTRIM', EVENTS, 0, EVENTS_KEPT - 1)
  redis.call('PEXPIRE', EVENTS, EVENTS_TTL_MS)
  if action ~= 'stopped_by_admin' then
    notify(event)
  end
end

-- last, after every write: tell the user's live channels (streamlimit.live) that these streams
-- ended (or, reason 'admitted', began), as JSON {at, reason, by, streams} (store/replies.py's
-- ``kick``). pcall: a refused publish
-- (an ACL without spublish, a server before 7.0) must not undo the script; the channels' next
-- renewal finds the tombstone instead
local function kick(now, reason, by, ids)
  if LIVE ~= '' and #ids > 0 then
    redis.pcall('SPUBLISH', LIVE, cjson.encode({at = now, reason = reason, by = by, streams = ids}))
  end
end

-- a budget (GCRA in integer microseconds: a burst of exactly per_min, then one every period, 60 s /
-- per_min rounded down to the microsecond): the
-- ms to wait (0: allowed) and the new theoretical arrival time; tat read from RATE or STOPS
local function budget(tat, now, per_min)
  if per_min <= 0 then
    return 0, nil
  end
  local now_us, period = now * 1000, math.floor(60000000 / per_min)
  tat = math.max(tonumber(tat or '0'), now_us)
  local wait = tat - now_us - (per_min - 1) * period
  if wait > 0 then
    return math.ceil(wait / 1000), nil
  end
  return 0, tat + period
end

-- writes: spend one of a budget (RATE or STOPS)
local function spend(key, tat, now)
  if tat then
    redis.call('SET', key, int(tat), 'PX', math.max(1, math.ceil((tat - now * 1000) / 1000)))
  end
end

local function flat(alive)
  local out = {}
  for _, l in ipairs(alive) do
    out[#out + 1] = l.id
    out[#out + 1] = l.expires
    out[#out + 1] = l.info
  end
  return out
end

local function ids_of(leases)
  local out = {}
  for i, l in ipairs(leases) do
    out[i] = l.id
  end
  return out
end

local function append(reply, list)
  for _, v in ipairs(list) do
    reply[#reply + 1] = v
  end
  return reply
end
