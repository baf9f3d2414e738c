-- Shared by every workload (each script loads it with dofile from its own folder).
-- setup() numbers the threads (global `id` in each), each thread counts what it sent in `ops`
-- and, where the script reads responses, the 2xx and other answers; done() prints one line
-- "BENCH_JSON {...}" with throughput, latency percentiles (us) and every error count.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

ops = {}
answers = { ok = 0, other = 0 }

function count_op(name)
  ops[name] = (ops[name] or 0) + 1
end

function count_answer(status)
  if status >= 200 and status < 300 then
    answers.ok = answers.ok + 1
  else
    answers.other = answers.other + 1
    ops["status_" .. status] = (ops["status_" .. status] or 0) + 1
  end
end

local function json_counts(field)
  local total = {}
  for _, thread in ipairs(threads) do
    for name, n in pairs(thread:get(field) or {}) do
      total[name] = (total[name] or 0) + n
    end
  end
  local parts = {}
  for name, n in pairs(total) do
    parts[#parts + 1] = string.format('"%s":%d', name, n)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},'
      .. '"ops":%s,"answers":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    json_counts("ops"), json_counts("answers")))
end

-- the seeded users, named like redis-benchmark's __rand_int__ (12 digits)
function seeded_user(k)
  return string.format("u%012d", k)
end

-- one prepared heartbeat per seeded user; each thread starts at its own offset
function heartbeat_requests(users)
  local reqs = {}
  for k = 0, users - 1 do
    reqs[#reqs + 1] = wrk.format("POST", "/v1/users/" .. seeded_user(k) .. "/streams/s/heartbeat")
  end
  return reqs
end

JSON_HEADERS = { ["Content-Type"] = "application/json" }
