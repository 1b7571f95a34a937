-- wrk script: replays click paths ("/c/TOKEN" per line) from the file in env CLICK_PATHS.
-- Thread k of n takes every n-th line from line k, so threads never share a token.
-- done() prints one line "WRKJSON {...}" with the figures the benchmark harness reads.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  local n = tonumber(os.getenv("WRK_THREADS") or "1")
  local i = 0
  for line in io.lines(os.getenv("CLICK_PATHS")) do
    if i % n == id then paths[#paths + 1] = line end
    i = i + 1
  end
  index = 0
  statuses = {}
end

function request()
  index = index + 1
  if index > #paths then index = 1 end
  return wrk.format("GET", paths[index])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local redirects, others = 0, 0
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, count in pairs(s) do
      if status == 302 then redirects = redirects + count else others = others + count end
    end
  end
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"redirects":%d,"other_status":%d,"socket_errors":%d,"p50_ms":%.3f,"p99_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, redirects, others,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
