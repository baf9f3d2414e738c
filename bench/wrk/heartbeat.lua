-- POST /v1/users/u<12 digits>/streams/s/heartbeat over every seeded user (steady state).
-- usage: wrk ... -s bench/wrk/heartbeat.lua URL -- <seeded users>
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local reqs, i = nil, 0

function init(args)
  reqs = heartbeat_requests(tonumber(args[1]))
  i = math.floor(#reqs * id / 8)
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
