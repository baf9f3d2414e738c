-- The original service's add/remove cycle on the compat API, with the original clients' bodies:
-- POST /user/stream {"userId": U} and, once it answered "Stream added", DELETE /user/stream
-- {"userId": U} (removes U's oldest stream). A compat answer names no user, so each wrk thread
-- has one user U = compat-<run>-<thread> (the bench raises its limit to 1000 beforehand): U
-- holds at most one stream per connection of the thread. Expected answers: 200 only.
-- usage: wrk ... -s bench/wrk/compat.lua URL -- <run id>
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local add, remove, pending = nil, nil, 0

function init(args)
  local body = string.format('{"userId":"compat-%s-%d"}', args[1], id)
  add = wrk.format("POST", "/user/stream", JSON_HEADERS, body)
  remove = wrk.format("DELETE", "/user/stream", JSON_HEADERS, body)
end

function request()
  if pending > 0 then
    pending = pending - 1
    count_op("remove")
    return remove
  end
  count_op("add")
  return add
end

-- the rare unexpected answers are named in the ops counts: an add answered by the outage policy
-- (a store call over STREAMLIMIT_STORE_TIMEOUT_MS under load: "degraded", no lease behind it)
-- and a remove that then finds no stream left for the thread's user (the original's 403)
function response(status, _, body)
  count_answer(status)
  if status == 200 and body:find("added", 1, true) then
    pending = pending + 1
    if body:find('"degraded":true', 1, true) then
      count_op("add_degraded")
    end
  elseif status == 403 and body:find("0 stream active", 1, true) then
    count_op("remove_found_none")
  end
end
