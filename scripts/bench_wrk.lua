-- wrk script for scripts/bench.py: sends PRE-SIGNED HubSpot execution requests, one per call.
--
--   wrk ... -s scripts/bench_wrk.lua http://127.0.0.1:PORT/actions/create_invoice -- <file prefix> <path> <active_ms>
--
-- Thread N reads "<file prefix>-N.tsv" (lines: timestamp TAB signature TAB path TAB body, or without the path
-- column, which then defaults to <path>), formats every request once in init(), then request() hands them out
-- in order: a file may mix actions, each line signed for its own path. If a thread runs out it starts again from the
-- top and counts the repeats in `wrapped` (bench.py makes the files large enough that this does not
-- happen). response() counts answers by status; done() prints one "BENCH_JSON {...}" line.
--
-- <active_ms>: that long after its first request a thread stops starting new ones (delay() holds every
-- connection back), so the requests in flight finish before wrk's -d ends. Every request sent is then answered and
-- counted, which lets bench.py match the answers against the database exactly.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]
local tv = ffi.new("bench_timeval")

local function now_ms()
   ffi.C.gettimeofday(tv, nil)
   return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
end

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
reqs = {}
loaded = 0
cursor = 0
sent = 0
wrapped = 0
counts = {}
active_ms = 0
stop_at = 0
held = 0
first_ms = 0
last_ms = 0

function init(args)
   local prefix, path = args[1], args[2]
   active_ms = tonumber(args[3] or "0") or 0
   local host = wrk.headers["Host"]
   for line in io.lines(prefix .. "-" .. id .. ".tsv") do
      -- A JSON body has no raw TAB, so four columns mean a path column.
      local ts, sig, line_path, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      if not body then
         ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
         line_path = path
      end
      if body then
         loaded = loaded + 1
         reqs[loaded] = wrk.format("POST", line_path, {
            ["Host"] = host,
            ["Content-Type"] = "application/json",
            ["X-HubSpot-Signature-v3"] = sig,
            ["X-HubSpot-Request-Timestamp"] = ts,
         }, body)
      end
   end
end

function delay()
   if stop_at > 0 and now_ms() >= stop_at then
      held = held + 1
      return 3600000
   end
   return 0
end

function request()
   if first_ms == 0 then
      first_ms = now_ms()
      if active_ms > 0 then
         stop_at = first_ms + active_ms
      end
   end
   cursor = cursor + 1
   if cursor > loaded then
      cursor = 1
   end
   sent = sent + 1
   if sent > loaded then
      wrapped = wrapped + 1
   end
   return reqs[cursor]
end

function response(status, headers, body)
   local key = tostring(status)
   counts[key] = (counts[key] or 0) + 1
   last_ms = now_ms()
end

local function encode(value)
   local kind = type(value)
   if kind == "table" then
      local parts = {}
      if #value > 0 then
         for _, item in ipairs(value) do
            table.insert(parts, encode(item))
         end
         return "[" .. table.concat(parts, ",") .. "]"
      end
      for key, item in pairs(value) do
         table.insert(parts, string.format("%q:%s", tostring(key), encode(item)))
      end
      return "{" .. table.concat(parts, ",") .. "}"
   elseif kind == "number" then
      return string.format("%.17g", value)
   elseif kind == "string" then
      return string.format("%q", value)
   elseif kind == "boolean" then
      return tostring(value)
   end
   return "null"
end

function done(summary, latency, requests)
   local out = {
      duration_us = summary.duration,
      requests = summary.requests,
      bytes = summary.bytes,
      errors = {
         connect = summary.errors.connect,
         read = summary.errors.read,
         write = summary.errors.write,
         status = summary.errors.status,
         timeout = summary.errors.timeout,
      },
      latency_us = {
         mean = latency.mean,
         max = latency.max,
         p50 = latency:percentile(50),
         p90 = latency:percentile(90),
         p99 = latency:percentile(99),
         p999 = latency:percentile(99.9),
      },
      threads = {},
   }
   for _, thread in ipairs(threads) do
      table.insert(out.threads, {
         id = thread:get("id"),
         loaded = thread:get("loaded"),
         sent = thread:get("sent"),
         wrapped = thread:get("wrapped"),
         counts = thread:get("counts"),
         held = thread:get("held"),
         first_ms = thread:get("first_ms"),
         last_ms = thread:get("last_ms"),
      })
   end
   io.write("BENCH_JSON " .. encode(out) .. "\n")
end
