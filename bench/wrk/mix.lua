-- 90/9/1 heartbeat/start/stop: in every 100 requests of a thread, 90 heartbeats over the seeded
-- users, 9 starts of new streams (POST /v1/users/mx-<run>-<thread>-<n>/streams, answered 201)
-- and 1 stop of a stream started a few requests before (DELETE, answered 204 whether or not
-- its start has landed yet). Expected answers: 2xx only (counted by wrk's non-2xx/3xx errors).
-- usage: wrk ... -s bench/wrk/mix.lua URL -- <seeded users> <run id>
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local beats, i, run, c, n = nil, 0, "", 0, 0
local body = '{"stream_id":"s"}'
local START = { [10] = 1, [21] = 1, [32] = 1, [43] = 1, [54] = 1, [65] = 1, [76] = 1, [87] = 1, [98] = 1 }

function init(args)
  beats = heartbeat_requests(tonumber(args[1]))
  i = math.floor(#beats * id / 8)
  run = args[2]
end

local function user(k)
  return string.format("/v1/users/mx-%s-%d-%d/streams", run, id, k)
end

function request()
  local k = c % 100
  c = c + 1
  if START[k] then
    n = n + 1
    count_op("start")
    return wrk.format("POST", user(n), JSON_HEADERS, body)
  elseif k == 99 then
    count_op("stop")
    return wrk.format("DELETE", user(n - 4) .. "/s")
  end
  count_op("heartbeat")
  i = i % #beats + 1
  return beats[i]
end
