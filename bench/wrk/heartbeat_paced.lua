-- heartbeat.lua below its maximum: before each request a connection waits a random pause,
-- exponentially distributed with mean <pause_ms>, so the connections do not fire in step and
-- arrivals are close to a Poisson stream of about connections * 1000 / (pause + latency) per s.
-- (wrk has no fixed-rate mode; wrk2 is not in Debian.)
-- usage: wrk ... -s bench/wrk/heartbeat_paced.lua URL -- <seeded users> <mean pause ms>
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "heartbeat.lua")

local base_init, mean_ms = init, 0

function init(args)
  base_init(args)
  mean_ms = tonumber(args[2])
  math.randomseed(os.time() * 100 + id)
end

function delay()
  -- wrk takes whole ms: round the draw so the mean stays mean_ms
  return math.floor(-mean_ms * math.log(1 - math.random()) + 0.5)
end
