-- One token for a fleet: 16 separate processes (LuaJIT, or Lua 5.1) share
-- the token through Redis or a file, renew it single-flight, survive Redis
-- dying under them, and all move to one new token after a 401.
local cjson = require "cjson"
local core = require "spotify.core"
local fake = require "spec.support.fake"
local fleet = require "spec.support.fleet"
local keys = require "spec.support.keys"
local redis_server = require "spec.support.redis"

local WORKERS, CALLS = 16, 50

local read = require("spec.support.files").read_file

local function tmpdir()
  local p = io.popen "mktemp -d /tmp/lua-spotify-fleet.XXXXXX"
  local d = p:read "*l"
  p:close()
  return d
end

--- Starts the fleet in the background; returns a function that waits for
-- it and returns every worker's summary.
local function launch(dir, f, params)
  local all = { calls = CALLS }
  for k, v in pairs(params) do all[k] = v end
  return fleet.launch(dir, f, WORKERS, all)
end

local function api_calls(f) return #f:log_for "/v1/" end

local function wait_until(cond, limit)
  local give_up = core.now() + limit
  while not cond() do
    assert(core.now() < give_up, "spec/fleet: timed out waiting")
    core.sleep(0.02)
  end
end

local function totals(summaries)
  local t = { ok = 0, failed = 0, cache_errors = 0, token_fetches = 0, tokens = {} }
  for _, s in ipairs(summaries) do
    t.ok, t.failed = t.ok + s.ok, t.failed + s.failed
    t.cache_errors = t.cache_errors + s.cache_errors
    t.token_fetches = t.token_fetches + s.token_fetches
    for _, tok in ipairs(s.tokens) do t.tokens[tok] = true end
  end
  t.distinct = 0
  for _ in pairs(t.tokens) do t.distinct = t.distinct + 1 end
  return t
end

local function assert_all_succeeded(summaries)
  for i, s in ipairs(summaries) do
    assert.equal(CALLS, s.ok, "worker " .. i .. ": " .. table.concat(s.errors, "; "))
  end
end

describe("a fleet of processes", function()
  local f, server, admin, dir
  setup(function()
    f = fake.start {}
    server = redis_server.start()
    admin = server:connect()
  end)
  teardown(function()
    if f then f:stop() end
    if server then server:stop() end
  end)
  before_each(function()
    f:reset()
    dir = tmpdir()
    admin:flushall()
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("sharing Redis from a cold cache fetches the token exactly once", function()
    -- a slow token endpoint keeps the first fetch in flight while the others look
    f:faults { { path = "/api/token", delay = 0.3, times = -1 } }
    local summaries = launch(dir, f, { cache = "redis", target = server.port })()
    assert_all_succeeded(summaries)
    assert.equal(1, #f:log_for "/api/token")
    assert.equal(WORKERS * CALLS, api_calls(f))
    local t = totals(summaries)
    assert.equal(1, t.token_fetches)
    assert.equal(1, t.distinct)
    assert.equal(0, t.cache_errors)
    local raw = admin:get("spotify:" .. keys.of(f))
    assert.equal(next(t.tokens), cjson.decode(raw).access_token)
    assert.falsy(raw:find("test-secret", 1, true))
  end)

  it("sharing a file from a cold cache fetches the token exactly once", function()
    f:faults { { path = "/api/token", delay = 0.3, times = -1 } }
    local path = dir .. "/tokens.json"
    local summaries = launch(dir, f, { cache = "file", target = path })()
    assert_all_succeeded(summaries)
    assert.equal(1, #f:log_for "/api/token")
    local t = totals(summaries)
    assert.equal(1, t.distinct)
    assert.equal(0, t.cache_errors)
    assert.falsy(read(path):find("test-secret", 1, true))
  end)

  for _, failure in ipairs { { "killed", "kill" }, { "hung (SIGSTOP)", "pause" } } do
    local what, act = failure[1], failure[2]
    it("Redis " .. what .. " mid-run: every call succeeds and the cache errors are reported", function()
      -- tokens live 3 s and are renewed 2 s early: every worker renews (and
      -- so talks to Redis) about once a second during its ~3 s run
      f:config { expires_in = 3 }
      local doomed = redis_server.start()
      finally(function() doomed:stop() end)
      local finish = launch(dir, f, { cache = "redis", target = doomed.port, refresh_buffer = 2,
        pause = 0.06, redis_timeout = 0.3 })
      wait_until(function() return api_calls(f) >= WORKERS * 5 end, 30)
      doomed[act](doomed)
      local summaries = finish()
      assert_all_succeeded(summaries)
      for i, s in ipairs(summaries) do
        assert.is_true(s.cache_errors >= 1, "worker " .. i .. " reported no cache error")
        -- on_request hears of the outage once, however many operations fail in it
        assert.equal(1, s.cache_error_events, "worker " .. i)
      end
    end)
  end

  it("a 401 leads to one new token, adopted by every process", function()
    local finish = launch(dir, f, { cache = "redis", target = server.port, pause = 0.05 })
    wait_until(function() return api_calls(f) >= WORKERS * 10 end, 30)
    f:config { revoke = true } -- every token issued so far is now refused
    local summaries = finish()
    assert_all_succeeded(summaries)
    assert.equal(2, #f:log_for "/api/token")
    local refused = #f:log_for("/v1/") - WORKERS * CALLS
    assert.is_true(refused >= 1, "no 401 was seen")
    local t = totals(summaries)
    assert.equal(2, t.distinct)
    local last = summaries[1].last_token
    for i, s in ipairs(summaries) do
      assert.equal(last, s.last_token, "worker " .. i)
      assert.equal(2, #s.tokens, "worker " .. i)
    end
    assert.equal(last, cjson.decode(admin:get("spotify:" .. keys.of(f))).access_token)
  end)
end)
