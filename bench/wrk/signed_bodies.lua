-- wrk script of bench/webhook.py: POSTs pre-signed webhook bodies to /webhook.
--
--   wrk ... -s signed_bodies.lua URL -- BODIES_PREFIX PERIOD_MS
--
-- wrk's Lua has no HMAC, so bench/webhook.py writes the bodies and their X-Hub-Signature-256
-- beforehand, one "signature<TAB>body" line each, in one file per wrk thread
-- (BODIES_PREFIX-0.txt, BODIES_PREFIX-1.txt, ...): every request carries the next body of its
-- thread's file, so media ids repeat only once a thread has used them all.
--
-- PERIOD_MS > 0 throttles: each connection waits a uniform random 0.5 to 1.5 times PERIOD_MS
-- before each request (wrk's delay() hook), which offers about connections * 1000 / PERIOD_MS
-- requests per second. 0 sends as fast as the server answers.
--
-- done() prints one line "WRK_JSON {...}" with the counts and the latency percentiles (µs).

local threads_started = 0

function setup(thread)
  thread:set("thread_index", threads_started)
  threads_started = threads_started + 1
end

local signatures, bodies = {}, {}
local count, next_index = 0, 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  local path = args[1] .. "-" .. thread_index .. ".txt"
  for line in io.lines(path) do
    local signature, body = line:match("^([^\t]+)\t(.*)$")
    count = count + 1
    signatures[count] = signature
    bodies[count] = body
  end
  if count == 0 then
    error("no bodies in " .. path)
  end
  local period = tonumber(args[2] or "0")
  if period > 0 then
    math.randomseed(thread_index + 1)
    local low, high = math.max(1, math.floor(period / 2)), math.floor(period * 3 / 2)
    -- Defined only when throttling: wrk checks for delay() after init, and a script with one
    -- pays a timer per request even when it returns 0.
    delay = function()
      return math.random(low, high)
    end
  end
end

function request()
  next_index = next_index % count + 1
  headers["X-Hub-Signature-256"] = signatures[next_index]
  return wrk.format("POST", "/webhook", headers, bodies[next_index])
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,'
      .. '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
