-- wrk script used for every bench run.
--   BENCH_POST_BYTES=N  turns each request into a POST with an N-byte body
--                       (wrk adds Content-Length); unset or 0 means GET.
-- done() prints one line "BENCH_JSON {...}" that bench/run.py parses; latencies are
-- in microseconds, errors are wrk's socket errors and its count of non-2xx/3xx answers.

local post_bytes = tonumber(os.getenv("BENCH_POST_BYTES") or "0") or 0
if post_bytes > 0 then
   wrk.method = "POST"
   wrk.body = string.rep("x", post_bytes)
   wrk.headers["Content-Type"] = "application/octet-stream"
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
