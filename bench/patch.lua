-- wrk script: PATCH one of the 10,000 generated customers of one system, at random.
-- SYSTEM and FIELD come from the environment (see bench/gateway_bench.py).
local system = os.getenv("BENCH_SYSTEM") or "keycom"
local field = os.getenv("BENCH_FIELD") or "note"
local token = os.getenv("BENCH_TOKEN") or "demo-editor"
local purpose = os.getenv("BENCH_PURPOSE") or "customer_service"
local counter = 0

request = function()
  counter = counter + 1
  local id = 100000 + math.random(0, 9999)
  local body = string.format('{"%s": "bench value %d"}', field, counter)
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["X-Purpose"] = purpose,
    ["Content-Type"] = "application/json",
  }
  return wrk.format("PATCH", "/v1/systems/" .. system .. "/customers/" .. id, headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    (summary.errors.status or 0)))
end
