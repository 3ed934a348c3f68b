--- Soak: SOAK_REQUESTS (default 100 000) HTTP requests through the client
-- against the fake Spotify injecting random faults, mixing blocking calls,
-- plural calls over the multi handle, started requests and client
-- close/reopen. Every result must be a value or a documented error; the
-- process RSS is printed after warm-up, at the middle and at the end, and
-- the run fails when memory keeps growing in the second half.
--
-- Run by spec/soak.sh (`make soak`), which starts the fake and passes its
-- port in SOAK_FAKE_PORT. Backoff waits run on a virtual clock.
dofile "spec/helper.lua"
local clock = require("spec.support.virtual_clock").install()
local spotify = require "spotify"
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"

local TOTAL = tonumber(os.getenv "SOAK_REQUESTS") or 100000
local PORT = assert(os.getenv "SOAK_FAKE_PORT", "SOAK_FAKE_PORT not set; run spec/soak.sh")
local BASE = "http://127.0.0.1:" .. PORT
local RESET_EVERY = 10000 -- fake log entries kept at most; a reset also revokes every token
local REOPEN_EVERY = 5000 -- requests per client before it is closed and a new one made
local MAX_GROWTH_KB = 8 * 1024 -- RSS growth allowed from the middle to the end

local KINDS = { auth = true, forbidden = true, not_found = true, bad_request = true,
  rate_limited = true, server = true, network = true, timeout = true, decode = true }

local FAULTS = {
  { status = 500 }, { status = 502 }, { status = 503 },
  { status = 429 }, { status = 429, headers = { ["Retry-After"] = "0" } },
  { status = 429, headers = { ["Retry-After"] = "2" } },
  { action = "drop" }, { action = "truncate" }, { action = "drop_mid_chunks" },
  { action = "bad_json" }, { action = "html", status = 502 }, { action = "empty" },
  { action = "wrong_ctype" }, { action = "chunked" },
  { status = 401, fixture = "error_401_token_expired.json" },
  { status = 404 },
}

local function control(what, body)
  local out = {}
  local ok, code = http.request {
    url = BASE .. "/_control/" .. what, method = "POST",
    source = ltn12.source.string(body),
    headers = { ["content-length"] = #body, ["content-type"] = "application/json" },
    sink = ltn12.sink.table(out),
  }
  assert(ok and code == 200, "soak: control " .. what .. " failed: " .. tostring(code))
end

local function arm_faults()
  control("reset", "{}")
  control("config", cjson.encode {
    faults = {
      { path = "/v1/", times = -1, action = "random", rate = 0.05, choices = FAULTS },
      { path = "/api/token", times = -1, action = "random", rate = 0.2, choices = FAULTS },
    },
  })
end

local function rss_kb()
  local fh = assert(io.open "/proc/self/status")
  local text = fh:read "*a"
  fh:close()
  return tonumber(text:match "VmRSS:%s*(%d+)")
end

local function base62_id(n)
  local digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
  local out = {}
  for i = 1, 22 do
    local d = (n * 7 + i * 13) % 62 + 1
    out[i] = digits:sub(d, d)
  end
  return table.concat(out)
end

local IDS = {}
for i = 1, 50 do IDS[i] = base62_id(i) end

local function new_client()
  return spotify.client {
    client_id = "test-id", client_secret = "test-secret",
    api_base = BASE .. "/v1", token_url = BASE .. "/api/token",
    max_retries = 3, timeout = 5, concurrency = 4,
  }
end

local outcomes, done_before = { ok = 0 }, 0
local client = new_client()

local function requests()
  return done_before + client:stats().requests
end

local function tally(value, err)
  if value ~= nil then
    outcomes.ok = outcomes.ok + 1
    return
  end
  assert(spotify.is_error(err) and KINDS[err.kind], "soak: unexpected result " .. tostring(err))
  assert(not tostring(err):find("test-secret", 1, true), "soak: secret in an error")
  outcomes[err.kind] = (outcomes[err.kind] or 0) + 1
end

local function started(id)
  local req = client:start("track", id)
  while not req:done() do client:poll(0.05) end
  return req:result()
end

local step = 0
local function one_step()
  step = step + 1
  local r = step % 25
  if r == 0 then
    tally(client:tracks(IDS))
  elseif r == 1 then
    tally(started(IDS[step % 50 + 1]))
  elseif r == 2 then
    tally(client:search("soak", { limit = 5, type = { "track", "artist" } }))
  elseif r == 3 then
    tally(client:album_tracks(IDS[1], { limit = 10 }))
  else
    tally(client:track(IDS[r]))
  end
end

local marks = {}
local function mark(name)
  collectgarbage "collect"
  marks[#marks + 1] = { name = name, requests = requests(), rss = rss_kb(),
    lua_kb = math.floor(collectgarbage "count") }
  local m = marks[#marks]
  print(("soak: %-6s after %6d requests: RSS %7.1f MB, Lua heap %6.1f MB"):format(
    m.name, m.requests, m.rss / 1024, m.lua_kb / 1024))
  io.stdout:flush()
end

arm_faults()
local started_at = os.time()
local warmup = math.min(1000, math.floor(TOTAL / 10))
while requests() < warmup do one_step() end
mark "start"
local next_reset, next_reopen = RESET_EVERY, REOPEN_EVERY
local middle_done = false
while requests() < TOTAL do
  one_step()
  local n = requests()
  if not middle_done and n >= TOTAL / 2 then
    middle_done = true
    mark "middle"
  end
  if n >= next_reset then
    next_reset = next_reset + RESET_EVERY
    arm_faults()
  end
  if n >= next_reopen then
    next_reopen = next_reopen + REOPEN_EVERY
    done_before = n
    client:close()
    client = new_client()
  end
end
mark "end"
client:close()

local kinds = {}
for k, v in pairs(outcomes) do kinds[#kinds + 1] = ("%s=%d"):format(k, v) end
table.sort(kinds)
print(("soak: %d requests in %d s (%d calls), backoff skipped %.0f s; outcomes: %s"):format(
  requests(), os.time() - started_at, step, clock.total(), table.concat(kinds, " ")))
local growth = marks[3].rss - marks[2].rss
print(("soak: RSS growth middle -> end: %+.1f MB (limit %.1f MB)"):format(growth / 1024, MAX_GROWTH_KB / 1024))
assert(outcomes.ok > step * 0.5, "soak: fewer than half of the calls succeeded")
assert(growth <= MAX_GROWTH_KB, "soak: memory keeps growing")
