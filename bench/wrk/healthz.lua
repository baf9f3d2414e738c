-- GET /healthz: the same server stack with no store call, the ceiling.
-- usage: wrk -t2 -c64 -d12s -s bench/wrk/healthz.lua http://127.0.0.1:PORT/healthz
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
