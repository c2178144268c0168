-- wrk script for benchmarks/common.py: POST the body in WRK_BODY_FILE, print one JSON result line.
-- Latency percentiles are wrk's (all requests, microseconds); errors = non-2xx + socket errors.
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout + e.status
  io.write(string.format(
    'WRK_JSON {"requests": %d, "errors": %d, "seconds": %.6f, "p50_ms": %.4f, "p99_ms": %.4f}\n',
    summary.requests, errors, summary.duration / 1e6,
    latency:percentile(50) / 1000.0, latency:percentile(99) / 1000.0))
end
