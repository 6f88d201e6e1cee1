-- Shared by the wrk scripts of benches/wrk_load.rs (loaded with dofile by each of them).
--
-- setup() numbers the threads (the global `id` in each thread, from 1); each thread counts its
-- answers that are not 200 (`non200`) and its 200s whose body is not the expected one
-- (`unexpected`); done() prints one line the bench parses:
--   wrk_result requests=N duration_us=N rps=X p50_us=N p90_us=N p99_us=N max_us=N non200=N
--              unexpected=N connect=N read=N write=N timeout=N
-- (one line; latencies in microseconds from wrk's own histogram).

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

non200 = 0
unexpected = 0

-- Counts one answer: `ok` says whether a 200's body is the one expected.
function count(status, ok)
  if status ~= 200 then
    non200 = non200 + 1
  elseif not ok then
    unexpected = unexpected + 1
  end
end

-- True when `body` contains `text` (plain search, no patterns).
function has(body, text)
  return body ~= nil and string.find(body, text, 1, true) ~= nil
end

json_headers = { ["Content-Type"] = "application/json" }

-- Which of several wrk processes loading at once this is (the bench sets it), so that their
-- session ids never meet.
local process = tonumber(os.getenv("PHONETREE_WRK_PROCESS") or "0") or 0

-- A UUID-shaped session id, unique per wrk process, thread and counter (36 characters, as 8x8's
-- are).
function session_id(thread, n)
  return string.format("%08x-%04x-4000-8000-%012x", thread, process, n)
end

function done(summary, latency, requests)
  local n200, unexp = 0, 0
  for _, t in ipairs(threads) do
    n200 = n200 + (t:get("non200") or 0)
    unexp = unexp + (t:get("unexpected") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "wrk_result requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d "
      .. "non200=%d unexpected=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    n200, unexp, e.connect, e.read, e.write, e.timeout))
end
