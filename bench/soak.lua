-- wrk script for bench/soak.sh: signed GET requests cycling through a list of paths,
-- each thread stopping after its share of the requests, every answer that is not
-- 2xx counted as a failure.
--   wrk ... -s bench/soak.lua URL -- REQUESTS_PER_THREAD "Header: v" "Header: v" PATH...
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   limit = tonumber(args[1])
   local headers = {}
   for i = 2, 3 do
      local name, value = args[i]:match("^([^:]+):%s*(.*)$")
      headers[name] = value
   end
   requests = {}
   for i = 4, #args do
      requests[#requests + 1] = wrk.format("GET", args[i], headers)
   end
   sent = 0
   answered = 0
   failed = 0
   first_failure = ""
end

function request()
   sent = sent + 1
   return requests[(sent - 1) % #requests + 1]
end

function response(status, headers, body)
   answered = answered + 1
   if status < 200 or status > 299 then
      failed = failed + 1
      if first_failure == "" then first_failure = status .. " " .. string.sub(body or "", 1, 200) end
   end
   if answered >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
   local answered, failed, first = 0, 0, ""
   for _, thread in ipairs(threads) do
      answered = answered + thread:get("answered")
      failed = failed + thread:get("failed")
      if first == "" then first = thread:get("first_failure") end
   end
   local e = summary.errors
   io.write(string.format("SOAK answered=%d non2xx=%d connect=%d read=%d write=%d timeout=%d seconds=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.1f\n",
      answered, failed, e.connect, e.read, e.write, e.timeout, summary.duration / 1e6,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
   if first ~= "" then io.write("SOAK first_failure=" .. first .. "\n") end
end
