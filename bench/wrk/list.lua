-- GET /v1/users/u<12 digits>/streams over every seeded user (1 active stream each).
-- usage: wrk ... -s bench/wrk/list.lua URL -- <seeded users>
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local reqs, i = {}, 0

function init(args)
  for k = 0, tonumber(args[1]) - 1 do
    reqs[#reqs + 1] = wrk.format("GET", "/v1/users/" .. seeded_user(k) .. "/streams")
  end
  i = math.floor(#reqs * id / 8)
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
