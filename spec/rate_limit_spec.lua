-- One rate limit for the whole fleet: a 429's Retry-After holds every
-- process sharing the cache (Redis, a file, nginx's shared dict), and
-- rate_limit paces them all in one sliding window.
local cjson = require "cjson"
local core = require "spotify.core"
local fake = require "spec.support.fake"
local files = require "spec.support.files"
local fleet_runner = require "spec.support.fleet"
local keys = require "spec.support.keys"
local nginx = require "spec.support.nginx"
local redis_server = require "spec.support.redis"
local spotify = require "spotify"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local PENALTY = 2
-- Requests already on the wire when the 429 arrives cannot be called
-- back: one per other process at most, arriving within this long.
local IN_FLIGHT = 0.25

local fleet = fleet_runner.launch

local function assert_all_succeeded(summaries)
  for i, s in ipairs(summaries) do
    assert.equal(0, s.failed, "worker " .. i .. ": " .. table.concat(s.errors, "; "))
  end
end

-- Arrival times of API requests (not the token endpoint), sorted. Spotify
-- counts a request when it arrives: `arrived` is the kernel's receive time,
-- not when the fake's thread got to it (`time`), which a busy machine can
-- delay by tens of milliseconds for one request and not the next.
local function api_times(f, from)
  local t = {}
  for i, e in ipairs(f:log_for "/v1/") do
    if i > (from or 0) then t[#t + 1] = e.arrived end
  end
  table.sort(t)
  return t
end

-- The API requests in the fake's log, and the one answered 429.
local function answered_429(f)
  local log, limited = f:log_for "/v1/", nil
  for _, e in ipairs(log) do
    if e.fault_status == 429 then limited = e end
  end
  assert.is_table(limited, "no request was answered 429")
  return log, limited
end

-- Once the 429 has left the fake, nothing but what was in flight arrives
-- for PENALTY seconds. In flight: requests arriving within IN_FLIGHT of it
-- that were still unanswered when it left (a request answered before the
-- 429 is earlier traffic, however slowly the fake got to the 429 itself).
local function assert_held(f, others)
  local log, limited = answered_429(f)
  local from = limited.answered
  local in_flight, held, after = 0, 0, 0
  for _, e in ipairs(log) do
    local dt = e.arrived - from
    if e ~= limited then
      if dt < IN_FLIGHT then
        if e.answered > from then in_flight = in_flight + 1 end
      elseif dt < PENALTY - 0.01 then
        held = held + 1
      else
        after = after + 1
      end
    end
  end
  assert.equal(0, held, held .. " API requests arrived during the penalty")
  assert.is_true(in_flight <= others, in_flight .. " requests in flight at the 429")
  assert.is_true(after > 0, "nothing was sent after the penalty")
end

-- Polls the shared cache (probe() is true once the penalty is in it) while
-- the fleet runs: returns the wall time it was first seen, or nil.
local function penalty_seen(probe, give_up)
  local testing = core.testing()
  while testing.time() < give_up do
    if probe() then return testing.time() end
    core.sleep(0.005)
  end
end

-- A fleet of sequential processes, however loaded the machine: once the
-- penalty was seen in the cache, each other process may still have one
-- request under way (it looked before the penalty was there); after that
-- every request of every process waits, until the penalty ends. The 429's
-- own process sends nothing more before then. Requests between the 429 and
-- the penalty reaching the cache are the window a shared cache cannot
-- close, and are not counted.
local function assert_held_fleet(f, seen)
  assert.is_number(seen, "the penalty never reached the shared cache")
  local log, limited = answered_429(f)
  local ends = limited.answered + PENALTY - 0.01
  local late, after = {}, 0
  for _, e in ipairs(log) do
    if e ~= limited and e.arrived > seen then
      if e.arrived < ends then
        late[e.user_agent] = (late[e.user_agent] or 0) + 1
      else
        after = after + 1
      end
    end
  end
  for agent, n in pairs(late) do
    local allowed = agent == limited.user_agent and 0 or 1
    assert.is_true(n <= allowed, ("%s sent %d requests during the penalty once it was shared"):format(agent, n))
  end
  assert.is_true(after > 0, "nothing was sent after the penalty")
end

local function first_call_429(f)
  f:faults { { path = "/v1/", status = 429, headers = { ["Retry-After"] = tostring(PENALTY) }, times = 1 } }
end

describe("one rate limit for the fleet", function()
  local f, server, dir
  setup(function()
    f = fake.start {}
    server = redis_server.start()
  end)
  teardown(function()
    if f then f:stop() end
    if server then server:stop() end
  end)
  before_each(function()
    f:reset()
    dir = files.read_command "mktemp -d"
    server:connect():flushall()
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("a 429 holds 8 processes sharing Redis for its Retry-After, then every call succeeds", function()
    first_call_429(f)
    local finish = fleet(dir, f, 8, { cache = "redis", target = server.port, calls = 15, pause = 0.02 })
    local redis = server:connect()
    local seen = penalty_seen(function() return redis:get("spotify:" .. keys.penalty "test-id") ~= nil end,
      core.testing().time() + 20)
    local summaries = finish()
    assert_all_succeeded(summaries)
    assert_held_fleet(f, seen)
    local waits = 0
    for _, s in ipairs(summaries) do waits = waits + s.rate_limited_waits end
    assert.is_true(waits >= 7, "only " .. waits .. " calls waited")
  end)

  it("a 429 holds 4 processes sharing a file cache", function()
    first_call_429(f)
    local path = dir .. "/tokens.json"
    local finish = fleet(dir, f, 4, { cache = "file", target = path, calls = 15, pause = 0.02 })
    local seen = penalty_seen(function()
      local ok, t = pcall(cjson.decode, files.read_file(path) or "")
      return ok and type(t) == "table" and t[keys.penalty "test-id"] ~= nil
    end, core.testing().time() + 20)
    local summaries = finish()
    assert_all_succeeded(summaries)
    assert_held_fleet(f, seen)
  end)

  it("rate_limit 20 per 2 s across 4 processes: never more than 20 in any 2 s, within 20% of the budget", function()
    local run = fleet(dir, f, 4, { cache = "redis", target = server.port, calls = 50,
      rate_requests = 20, rate_window = 2 })
    local summaries = run()
    assert_all_succeeded(summaries)
    local t = api_times(f)
    assert.equal(200, #t)
    for i = 21, #t do
      assert.is_true(t[i] - t[i - 20] >= 2,
        ("requests %d and %d arrived %.3f s apart"):format(i - 20, i, t[i] - t[i - 20]))
    end
    local budget = (200 / 20 - 1) * 2 -- 18 s: ten windows of 20, the first at once
    local took = t[#t] - t[1]
    assert.is_true(took >= budget, ("took %.1f s"):format(took))
    assert.is_true(took <= 1.2 * 20, ("took %.1f s, more than 20%% over the budget"):format(took))
  end)

  it("rate_limit 20 per 2 s with fallback 5, 4 processes over a cache without incr: never more than 20 in any 2 s",
    function()
      local run = fleet(dir, f, 4, { cache = "file_noincr", target = dir .. "/tokens.json", calls = 12,
        rate_requests = 20, rate_window = 2, rate_fallback = 5 })
      local summaries = run()
      assert_all_succeeded(summaries)
      local t = api_times(f)
      assert.equal(48, #t)
      for i = 21, #t do
        assert.is_true(t[i] - t[i - 20] >= 2,
          ("requests %d and %d arrived %.3f s apart"):format(i - 20, i, t[i] - t[i - 20]))
      end
      -- each process paced itself: its 12 calls took at least two windows
      for i, s in ipairs(summaries) do
        assert.is_true(s.finished - s.started >= 4, ("worker %d took %.1f s"):format(i, s.finished - s.started))
      end
    end)

  -- Clocks set off by libfaketime, which cannot run beside ASan's runtime.
  local skew_it = fleet_runner.can_skew_clocks() and it or pending

  for _, paced in ipairs { false, true } do
    skew_it(("a process whose clock is an hour ahead gets a 2 s 429: the other 3 are held for it, no more than 5 s%s")
      :format(paced and ", paced" or ""), function()
      -- the skewed process asks for a track of its own, which the fake answers 429 once
      local skewed_track = "0" .. ID:sub(2)
      f:faults { { path = "/v1/tracks/" .. skewed_track, status = 429, times = 1,
        headers = { ["Retry-After"] = tostring(PENALTY) } } }
      -- The token is in Redis before the fleet starts. (The skewed process
      -- finds it expired on its clock and fetches its own, at once since
      -- no one else renews; the others take it from Redis.)
      assert(spotify.client(fake.client_opts(f, { cache = spotify.cache.redis(server:connect()) })):access_token())
      local finish = fleet(dir, f, 4, { cache = "redis", target = server.port, calls = 15, pause = 0.1,
        rate_requests = paced and 1000 or nil, rate_window = paced and 10 or nil }, function(i)
        if i == 1 then return { clock = 3600, track = skewed_track } end
      end)
      local redis = server:connect()
      local seen = penalty_seen(function() return redis:get("spotify:" .. keys.penalty "test-id") ~= nil end,
        core.testing().time() + 20)
      local summaries = finish()
      assert_all_succeeded(summaries)
      assert_held_fleet(f, seen)
      for i = 2, 4 do
        local s = summaries[i]
        assert.is_true(s.rate_limited_waits >= 1, "worker " .. i .. " was not held")
        assert.is_true(s.longest <= 5, ("worker %d was held %.1f s"):format(i, s.longest))
      end
    end)
  end

  skew_it("rate_limit 20 per 2 s across 4 processes, two with clocks 1.5 s ahead: never more than 20 in any 2 s",
    function()
      local run = fleet(dir, f, 4, { cache = "redis", target = server.port, calls = 50,
        rate_requests = 20, rate_window = 2 }, function(i) return { clock = i <= 2 and 1.5 or 0 } end)
      local summaries = run()
      assert_all_succeeded(summaries)
      local t = api_times(f)
      assert.equal(200, #t)
      io.stderr:write(("[peak: %d requests in 2 s]\n"):format((f:peak("/v1/", 2))))
      for i = 21, #t do
        assert.is_true(t[i] - t[i - 20] >= 2,
          ("requests %d and %d arrived %.3f s apart"):format(i - 20, i, t[i] - t[i - 20]))
      end
    end)

  it("Redis stopped mid-run: no call fails, and pacing goes on within each process", function()
    local doomed = redis_server.start()
    finally(function() doomed:stop() end)
    local run = fleet(dir, f, 4, { cache = "redis", target = doomed.port, calls = 30, pause = 0.02,
      rate_requests = 40, rate_window = 1, redis_timeout = 0.3 })
    local give_up = core.now() + 30
    while #f:log_for "/v1/" < 20 and core.now() < give_up do core.sleep(0.05) end
    doomed:kill()
    local summaries = run()
    assert_all_succeeded(summaries)
    for i, s in ipairs(summaries) do
      assert.is_true(s.cache_errors >= 1, "worker " .. i .. " saw no cache error")
      assert.equal(1, s.cache_error_events, "worker " .. i .. ": one report per outage")
    end
  end)
end)

describe("one rate limit inside nginx", function()
  local f, server
  setup(function()
    nginx.check()
    f = fake.start {}
    server = nginx.start {
      workers = 2,
      http = nginx.package_paths() .. "\n  lua_shared_dict tokens 1m;",
      server = [[
    location = /track { content_by_lua_block { require("rl_app").track() } }
    location = /paced { content_by_lua_block { require("rl_app").track("paced") } }
    location = /quota { content_by_lua_block { require("rl_app").track("quota") } }]],
      -- one client per worker and kind, made on its first request; each
      -- kind its own budget_key, so one test's penalty holds no other
      files = { ["rl_app.lua"] = ([[
local spotify = require "spotify"
local clients = {}
local extra = {
  paced = { budget_key = "paced", rate_limit = { requests = 10, window = 2 } },
  quota = { budget_key = "quota", max_retry_after = 3600 },
}
return { track = function(kind)
  kind = kind or "plain"
  if not clients[kind] then
    local o = { client_id = "test-id", client_secret = "test-secret",
      api_base = %q, token_url = %q, cache = spotify.cache.shdict(ngx.shared.tokens) }
    for k, v in pairs(extra[kind] or {}) do o[k] = v end
    clients[kind] = spotify.client(o)
  end
  local t, err = clients[kind]:track(ngx.var.arg_id or %q)
  ngx.say(t and "ok"
    or (tostring(err) .. " reason=" .. tostring(err.reason) .. " retry_after=" .. tostring(err.retry_after)))
end }
]]):format(f.api_base, f.token_url, ID) },
    }
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("a 429 holds both workers sharing a shared dict", function()
    f:reset()
    first_call_429(f)
    local paths = {}
    for i = 1, 60 do paths[i] = "/track" end
    local results = server:parallel(paths, 8)
    for _, r in ipairs(results) do
      assert.equal(200, r.status)
      assert.matches("^ok", r.body)
    end
    assert_held(f, 7)
    assert.same({}, server:complaints())
  end)

  -- These two keep the fake's state (a reset revokes the token the
  -- workers share) and count the API requests they add to its log.
  it("rate_limit 10 per 2 s across both workers (the shared dict's pace): never more than 10 in any 2 s", function()
    local mark = #f:log_for "/v1/"
    local paths = {}
    -- distinct tracks: identical GETs in flight would share one request
    for i = 1, 30 do paths[i] = ("/paced?id=P%021d"):format(i) end
    for _, r in ipairs(server:parallel(paths, 8)) do
      assert.equal(200, r.status)
      assert.matches("^ok", r.body)
    end
    local t = api_times(f, mark)
    assert.equal(30, #t)
    for i = 11, #t do
      assert.is_true(t[i] - t[i - 10] >= 2,
        ("requests %d and %d arrived %.3f s apart"):format(i - 10, i, t[i] - t[i - 10]))
    end
    assert.same({}, server:complaints())
  end)

  it("a spent quota (429 QUOTA_EXCEEDED) fails every call of both workers at once, with one request", function()
    local mark = #f:log_for "/v1/"
    f:faults { { path = "/v1/", status = 429, reason = "QUOTA_EXCEEDED", headers = { ["Retry-After"] = "900" } } }
    local status, body = server:get "/quota"
    assert.equal(200, status)
    assert.matches("rate_limited %(429%).* reason=QUOTA_EXCEEDED retry_after=900", body)
    local paths = {}
    for i = 1, 12 do paths[i] = "/quota" end
    for _, r in ipairs(server:parallel(paths, 4)) do
      assert.matches("^spotify: rate_limited: .* reason=QUOTA_EXCEEDED retry_after=8%d%d", r.body)
    end
    assert.equal(1, #api_times(f, mark))
    assert.same({}, server:complaints())
  end)
end)

-- What is stored for the fleet is bounded by what the reader can trust:
-- a Retry-After that is no time, a stored penalty beyond any Spotify
-- sends, one written by a clock hours ahead, a pacing slot from such a
-- clock. One process on a shared store (memory: no clock of its own to
-- fall back on); the virtual clock records every wait instead of sleeping.
describe("stored times a wrong clock cannot stretch", function()
  local clock = require "spec.support.virtual_clock"
  local testing = core.testing()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function()
    f:reset()
    clock.install()
    clock.reset()
  end)
  after_each(function() testing.virtual_clock(false) end)

  local function client(cache, extra)
    local o = { cache = cache }
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(fake.client_opts(f, o))
  end

  local function longest_wait()
    local m = 0
    for _, w in ipairs(clock.waits) do m = math.max(m, w) end
    return m
  end

  it("a Retry-After that is not a finite number of seconds counts as absent", function()
    for _, v in ipairs { "inf", "-inf", "infinity", "nan", "0x10", "1e999", "2s", "" } do
      assert.is_nil(testing.parse_retry_after(v), v)
    end
    assert.equal(2, testing.parse_retry_after " 2 ")
    assert.equal(0.5, testing.parse_retry_after "0.5")
    -- a finite value beyond any Spotify sends is the longest it sends
    assert.equal(86400, testing.parse_retry_after "1e308")
    assert.equal(86400, testing.parse_retry_after "99999999999")
  end)

  it("Retry-After: inf backs off as a 429 without one, and shares no day-long penalty", function()
    f:faults { { path = "/v1/", status = 429, headers = { ["Retry-After"] = "inf" }, times = 1 } }
    local cache = spotify.cache.memory()
    local c = client(cache)
    assert(c:track(ID))
    assert.equal(2, #f:log_for "/v1/")
    assert.is_true(longest_wait() <= 8, "waited " .. longest_wait())
    local stored = cache:get(keys.penalty "test-id")
    assert.is_true(stored == nil or tonumber(stored:match "^%S+") < testing.time() + 8, tostring(stored))
  end)

  it("a stored penalty of 1e300 holds for the longest penalty there is, not for ever", function()
    local cache = spotify.cache.memory()
    cache:set(keys.penalty "test-id", "1e300", 60)
    local c = client(cache, { max_retry_after = 1e9 })
    assert(c:track(ID))
    assert.equal(1, c:stats().rate_limited_waits)
    assert.is_true(longest_wait() <= 86400, "waited " .. longest_wait())
    -- a spent quota's: the call fails with the cap, and the client holds
    -- itself no longer than that
    cache:set(keys.penalty "test-id", "1e300 QUOTA_EXCEEDED", 60)
    local _, err = c:track(ID)
    assert.equal("QUOTA_EXCEEDED", err.reason)
    assert.is_true(err.retry_after <= 86400, tostring(err.retry_after))
    core.sleep(86401) -- virtual: the entry's ttl and the cap have passed
    assert(c:track(ID))
  end)

  it("a stored penalty that is not finite holds nothing", function()
    local cache = spotify.cache.memory()
    local c = client(cache, { max_retry_after = 1e9 })
    for _, v in ipairs { "inf", "nan", "1e999 QUOTA_EXCEEDED", ("%.17g inf"):format(testing.time() + 5) } do
      cache:set(keys.penalty "test-id", v, 60)
      assert(c:track(ID))
    end
    assert.equal(0, c:stats().rate_limited_waits)
  end)

  it("a penalty written by a clock an hour ahead holds no longer than the penalty its writer saw", function()
    local cache = spotify.cache.memory()
    cache:set(keys.penalty "test-id", ("%.17g 2"):format(testing.time() + 3602), 2)
    local c = client(cache, { max_retry_after = 1e9 })
    assert(c:track(ID))
    assert.equal(1, c:stats().rate_limited_waits)
    assert.is_true(longest_wait() <= 2, "waited " .. longest_wait())
  end)

  it("a pacing slot written by a clock an hour ahead stalls a request no longer than a window", function()
    local cache = spotify.cache.memory()
    -- the first request takes slot 1 of the shared window (its counter's first value)
    cache:set(keys.pace "test-id" .. ":1", ("%.17g"):format(testing.time() + 3600), 60)
    local c = client(cache, { rate_limit = { requests = 5, window = 2 } })
    assert(c:track(ID))
    assert.equal(1, c:stats().rate_limited_waits)
    assert.is_true(longest_wait() <= 2.05 + 0.01, "waited " .. longest_wait())
  end)

  it("a start from a cache's own pace that is no time within a day is none: the process paces itself", function()
    -- a cache of the user's: its pace answers a start that cannot be one
    for _, start in ipairs { math.huge, 1e300, testing.time() + 2 * 86400 } do
      local kept = {}
      local cache = {
        get = function(_, k) return kept[k] end,
        set = function(_, k, v) kept[k] = v end,
        pace = function() return start end,
      }
      local c = client(cache, { rate_limit = { requests = 5, window = 2 } })
      assert(c:track(ID))
      assert.is_true(longest_wait() <= 2.05 + 0.01, tostring(start) .. ": waited " .. longest_wait())
      c:close()
    end
  end)
end)
