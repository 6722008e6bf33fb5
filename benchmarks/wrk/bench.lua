-- wrk script of benchmarks/run.py.
--
-- BENCH_BODY_BYTES (environment): when set and > 0, every request is a POST
-- of that many bytes (the upload workload); otherwise a GET.
-- At the end it writes one line "BENCH_RESULT {json}" with the totals and
-- the latency percentiles (microseconds) that the harness reads.

local body_bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "0") or 0
if body_bytes > 0 then
    wrk.method = "POST"
    wrk.body = string.rep("x", body_bytes)
    wrk.headers["Content-Type"] = "application/octet-stream"
end

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
        '"connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
        '"timeout_errors": %d, "non2xx": %d, "latency_p50_us": %d, ' ..
        '"latency_p90_us": %d, "latency_p99_us": %d, "latency_max_us": %d, ' ..
        '"latency_mean_us": %.1f}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.timeout, e.status,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max, latency.mean))
end
