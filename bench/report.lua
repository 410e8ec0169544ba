-- wrk script for `make bench`: prints the run's results as one machine-readable line,
--   BENCHJSON {"requests":..,"p50_us":..,"p99_us":..,"connect":..,..}
-- so bench.py never parses wrk's human output (units like "1.20ms" or "2.5k").
-- Other scripts (pipeline.lua) load this file for the same done() hook.
--
-- A percentile of -1 means "wrk could not tell": wrk 4.1's coordinated-omission correction
-- (stats_correct) adds samples below the recorded minimum, and latency:percentile() scans only
-- from that minimum, so under pipelining the rank is never reached and it returns 0. The
-- Debian build cannot index the histogram from Lua (latency[i] returns i), so there is no way
-- round it here; bench.py shows such a value as "n/a".

local function pct(latency, p)
  local v = latency:percentile(p)
  if v == 0 and latency.max > 0 then
    return -1
  end
  return v
end

local function report(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"bytes":%d,"duration_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    pct(latency, 50), pct(latency, 90), pct(latency, 99), latency.max))
end

done = report
