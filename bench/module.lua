--- Drives lua-spotify for bench/bench.py: one mode, N requests, one line of
-- JSON on stdout ({"n", "cpu_us", "wall_s", "conns", ...}).
--
-- usage: lua module.lua MODE API_BASE TOKEN_URL N [CA_FILE]
--   MODE: track | search | multi16 | batch50 | token | long
-- The IDs come from $BENCH_IDS (one a line). CPU time is the process's
-- (os.clock is CLOCK_PROCESS_CPUTIME_ID: user + system), taken around the
-- measured loop only, after a warm-up that fetches the token and opens the
-- connection.
local spotify = require "spotify"
local now = require("spotify.core").now -- monotonic seconds

local mode, api_base, token_url, n, ca_file = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
if ca_file == "" then ca_file = nil end

local WARMUP = 20
local SEARCH_TYPES = { "track", "artist", "album" }

local function read_ids(path)
  local ids = {}
  for line in assert(io.lines(path)) do
    if line ~= "" then ids[#ids + 1] = line end
  end
  return ids
end

local ids = read_ids(assert(os.getenv "BENCH_IDS", "BENCH_IDS is not set"))

local function id_at(i)
  return ids[(i - 1) % #ids + 1]
end

local function ids_from(first, count)
  local out = {}
  for i = 1, count do out[i] = id_at(first + i - 1) end
  return out
end

--- Kilobytes from /proc/self/status (VmRSS, VmHWM).
local function proc_kib(field)
  local f = io.open "/proc/self/status"
  if not f then return 0 end
  local text = f:read "*a"
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+)")) or 0
end

local function make_client(extra)
  local opts = {
    client_id = "bench-client", client_secret = "bench-secret",
    api_base = api_base, token_url = token_url, ca_file = ca_file,
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return spotify.client(opts)
end

local function must(value, err)
  if value == nil then error("bench request failed: " .. tostring(err), 2) end
  return value
end

local function check_track(t)
  if type(t) ~= "table" or type(t.id) ~= "string" then error("bench: answer is not a track", 2) end
end

-- One request of each mode; `i` varies the ID like a real workload would.
local steps = {
  track = function(c, i) check_track(must(c:track(id_at(i)))) end,
  search = function(c)
    local r = must(c:search("Muse", { type = SEARCH_TYPES }))
    if type(r.tracks) ~= "table" or #r.tracks.items == 0 then error "bench: search answer has no tracks" end
  end,
  batch50 = function(c, i)
    local list = must(c:tracks(ids_from(i, 50)))
    if #list ~= 50 then error("bench: batch answer has " .. #list .. " tracks") end
    check_track(list[50])
  end,
}

local function timed(fn)
  local cpu0, wall0 = os.clock(), now()
  fn()
  return os.clock() - cpu0, now() - wall0
end

local function emit(fields)
  local parts = {}
  for k, v in pairs(fields) do
    local value = type(v) == "string" and ('"' .. v .. '"') or string.format("%.17g", v)
    parts[#parts + 1] = string.format('"%s": %s', k, value)
  end
  io.write("{", table.concat(parts, ", "), "}\n")
end

local function sequential(step)
  local c = make_client()
  for i = 1, WARMUP do step(c, i) end
  local cpu, wall = timed(function()
    for i = 1, n do step(c, i) end
  end)
  emit { n = n, cpu_us = cpu * 1e6, wall_s = wall, conns = c:stats().connections_opened }
  c:close()
end

-- Plural call: N single-track GETs, 16 in flight over the multi handle.
local function multi16()
  local c = make_client { batch = false, concurrency = 16 }
  must(c:tracks(ids_from(1, 32)))
  local list = ids_from(1, n)
  local out
  local cpu, wall = timed(function() out = must(c:tracks(list)) end)
  if #out ~= n then error("bench: plural answer has " .. #out .. " tracks") end
  check_track(out[n])
  emit { n = n, cpu_us = cpu * 1e6, wall_s = wall, conns = c:stats().connections_opened }
  c:close()
end

-- access_token() on a cached token: calls per second.
local function token_calls()
  local c = make_client()
  must(c:access_token())
  local cpu, wall = timed(function()
    for _ = 1, n do c:access_token() end
  end)
  emit { n = n, cpu_us = cpu * 1e6, wall_s = wall, conns = c:stats().connections_opened }
  c:close()
end

-- RSS after a warm-up of 2000 requests and again after N more.
local function long_run()
  local c = make_client()
  local step = steps.track
  for i = 1, 2000 do step(c, i) end
  collectgarbage()
  local rss0 = proc_kib "VmRSS"
  local cpu, wall = timed(function()
    for i = 1, n do step(c, i) end
  end)
  collectgarbage()
  local rss1 = proc_kib "VmRSS"
  emit {
    n = n, cpu_us = cpu * 1e6, wall_s = wall, conns = c:stats().connections_opened,
    rss_start_kib = rss0, rss_end_kib = rss1, rss_growth_kib = rss1 - rss0,
  }
  c:close()
end

if steps[mode] then
  sequential(steps[mode])
elseif mode == "multi16" then
  multi16()
elseif mode == "token" then
  token_calls()
elseif mode == "long" then
  long_run()
else
  error("bench: unknown mode " .. tostring(mode))
end
