-- Start/stop cycle: POST /v1/users/ss-<run>-<thread>-<n>/streams {"stream_id":"s"}, and once
-- its 201 is back, DELETE its Location (the same user and stream). A connection that is free
-- sends a pending DELETE first, else a new start: starts and stops alternate, and no stop
-- can overtake its start. Expected answers: 201 and 204 only.
-- usage: wrk ... -s bench/wrk/start_stop.lua URL -- <run id>
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local run, n = "", 0
local pending, head, tail = {}, 1, 0
local body = '{"stream_id":"s"}'

function init(args)
  run = args[1]
end

function request()
  if head <= tail then
    local path = pending[head]
    pending[head] = nil
    head = head + 1
    count_op("stop")
    return wrk.format("DELETE", path)
  end
  n = n + 1
  count_op("start")
  return wrk.format("POST", string.format("/v1/users/ss-%s-%d-%d/streams", run, id, n), JSON_HEADERS, body)
end

function response(status, headers, _)
  count_answer(status)
  if status == 201 then
    local location = headers["location"] or headers["Location"]
    if location then
      tail = tail + 1
      pending[tail] = location
    end
  end
end
