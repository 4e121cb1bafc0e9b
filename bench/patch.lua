-- wrk script of bench/gateway_bench.py: PATCH one field of a random customer, and count
-- every answer. Settings come from the environment (bench/load.py sets them):
--   BENCH_SYSTEM        system in the path (keycom, billbee)
--   BENCH_FIELD         the field patched (a top-level field of that system)
--   BENCH_VALUE_FORMAT  string.format pattern of the new value, given (stamp, counter);
--                       stamp = BENCH_STAMP * 100 + thread number, so that no request of
--                       one server run repeats an earlier value (a repeat is no change)
--   BENCH_STAMP         a number per wrk invocation (warm-up 1, throughput 2, latency 3)
--   BENCH_IDS_FILE      the customer ids to pick from, one a line
--   BENCH_TOKEN, BENCH_PURPOSE   bearer token and X-Purpose
-- done() prints one line "RESULT {json}": wrk's summary, latency percentiles (µs), the
-- answers by HTTP status and how many 2xx bodies said "applied": true, summed over threads.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

-- per-thread state; globals, so that done() can read them with thread:get()
bench_statuses = {}
bench_applied = 0
local ids = {}
local counter = 0
local system, field, value_format, stamp, headers

function init(args)
  system = os.getenv("BENCH_SYSTEM")
  field = os.getenv("BENCH_FIELD")
  value_format = os.getenv("BENCH_VALUE_FORMAT")
  stamp = tonumber(os.getenv("BENCH_STAMP") or "1") * 100 + (thread_number or 1)
  for line in io.lines(os.getenv("BENCH_IDS_FILE")) do
    if line ~= "" then ids[#ids + 1] = line end
  end
  if #ids == 0 then error("BENCH_IDS_FILE lists no customer") end
  headers = {
    ["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "demo-editor"),
    ["X-Purpose"] = os.getenv("BENCH_PURPOSE") or "customer_service",
    ["Content-Type"] = "application/json",
  }
end

function request()
  counter = counter + 1
  local id = ids[math.random(1, #ids)]
  local value = string.format(value_format, stamp, counter)
  local body = string.format('{"%s": "%s"}', field, value)
  return wrk.format("PATCH", "/v1/systems/" .. system .. "/customers/" .. id, headers, body)
end

function response(status, resp_headers, body)
  bench_statuses[status] = (bench_statuses[status] or 0) + 1
  if status >= 200 and status < 300 and string.find(body, '"applied":%s*true') then
    bench_applied = bench_applied + 1
  end
end

function done(summary, latency, requests)
  local statuses, applied = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("bench_statuses")) do
      statuses[status] = (statuses[status] or 0) + n
    end
    applied = applied + thread:get("bench_applied")
  end
  local parts = {}
  for status, n in pairs(statuses) do
    parts[#parts + 1] = string.format('"%d": %d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "statuses": {%s}, ' ..
    '"applied": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d}, "latency_us": {"min": %d, "mean": %.1f, "max": %d, "stdev": %.1f, ' ..
    '"p50": %d, "p90": %d, "p99": %d, "p99.9": %d}}\n',
    summary.requests, summary.duration, summary.bytes, table.concat(parts, ", "), applied,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
