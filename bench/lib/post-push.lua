-- wrk script: POSTs a signed GitHub push delivery, a fresh X-GitHub-Delivery per
-- request (a repeated id is a redelivery to stagehand: another, cheaper path).
-- Environment: BENCH_BODY (file with the body), BENCH_SIG (sha256=<hex>), BENCH_RUN
-- (prefix that keeps ids unique across runs against the same server).

local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local body = f:read("*a")
f:close()
local sig = assert(os.getenv("BENCH_SIG"), "BENCH_SIG not set")
local run = os.getenv("BENCH_RUN") or "run"

local next_thread = 0
function setup(thread)
   next_thread = next_thread + 1
   thread:set("thread_id", next_thread)
end

local counter = 0
local headers = {
   ["Content-Type"] = "application/json",
   ["X-GitHub-Event"] = "push",
   ["X-GitHub-Hook-ID"] = "123456789",
   ["X-Hub-Signature-256"] = sig,
   ["User-Agent"] = "GitHub-Hookshot/bench",
}

function request()
   counter = counter + 1
   headers["X-GitHub-Delivery"] = string.format("%s-%d-%d", run, thread_id or 0, counter)
   return wrk.format("POST", nil, headers, body)
end
