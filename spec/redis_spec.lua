-- spotify.cache.redis against a real redis-server: keys, TTL, the lock and
-- its owner, both client dialects, and every way Redis can fail (down, hung,
-- answering garbage) never failing an API call.
local spotify = require "spotify"
local core = require "spotify.core"
local testing = core.testing()
local cjson = require "cjson"
local fake = require "spec.support.fake"
local keys = require "spec.support.keys"
local redis_server = require "spec.support.redis"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

-- A client of the fake using a Redis cache of its own, as another process
-- would have; `events` collects on_request's cache errors.
local function client_with(f, cache, extra)
  local events = {}
  local o = { cache = cache, on_request = function(info)
    if info.event == "cache_error" then events[#events + 1] = info end
  end }
  for k, v in pairs(extra or {}) do o[k] = v end
  return spotify.client(fake.client_opts(f, o)), events
end

describe("redis cache", function()
  local f, server, admin
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
    admin:flushall()
  end)

  it("stores the token under prefix .. a digest of the credentials with the TTL, never the secret", function()
    local c = client_with(f, spotify.cache.redis(server:connect()), { refresh_buffer = 60 })
    local tok = assert(c:access_token())
    local token_key, lock_key = keys.of(f)
    local raw = admin:get("spotify:" .. token_key)
    local entry = cjson.decode(raw)
    assert.equal(tok, entry.access_token)
    assert.falsy(raw:find("test-secret", 1, true))
    for _, k in ipairs(admin:keys "*") do assert.falsy(k:find("test-secret", 1, true), k) end
    local ttl = admin:ttl("spotify:" .. token_key)
    assert.is_true(ttl > 3600 - 5 and ttl <= 3600, "ttl " .. ttl) -- the token's lifetime
    assert.is_nil(admin:get("spotify:" .. lock_key)) -- released after the fetch
  end)

  it("hands the token to other processes: one fetch, then cache hits", function()
    local a = client_with(f, spotify.cache.redis(server:connect()))
    local b = client_with(f, spotify.cache.redis(server:connect()))
    assert(a:track(ID))
    assert(b:track(ID))
    assert.equal(1, #f:log_for("/api/token"))
    assert.equal(1, b:stats().cache_hits)
    assert.equal(a:access_token(), b:access_token())
  end)

  it("keeps apps and prefixes apart", function()
    f:config { credentials = { ["test-id"] = "test-secret", other = "other-secret" } }
    local a = client_with(f, spotify.cache.redis(server:connect(), { prefix = "app1:" }))
    local b = client_with(f, spotify.cache.redis(server:connect(), { prefix = "app1:" }),
      { client_id = "other", client_secret = "other-secret" })
    assert.are_not.equal(a:access_token(), b:access_token())
    assert.truthy(admin:get("app1:" .. keys.of(f)))
    assert.truthy(admin:get("app1:" .. keys.of(f, { client_id = "other", client_secret = "other-secret" })))
    assert.is_nil(admin:get("spotify:" .. keys.of(f)))
  end)

  it("lock: one owner at a time, released only by its owner, expires after its ttl", function()
    local a = spotify.cache.redis(server:connect())
    local b = spotify.cache.redis(server:connect())
    assert.is_true(a:lock("k:lock", 5))
    assert.is_false(b:lock("k:lock", 5))
    b:unlock("k:lock") -- not b's: stays
    assert.truthy(admin:get("spotify:k:lock"))
    a:unlock("k:lock")
    assert.is_nil(admin:get("spotify:k:lock"))
    assert.is_true(b:lock("k:lock", 5))
    b:unlock("k:lock")
    -- an expired lock taken by someone else is not released by the first owner
    assert.is_true(a:lock("k:lock", 0.1))
    local pttl = admin:pttl("spotify:k:lock")
    assert.is_true(pttl > 0 and pttl <= 100, "pttl " .. pttl)
    core.sleep(0.2)
    assert.is_true(b:lock("k:lock", 5))
    a:unlock("k:lock")
    assert.truthy(admin:get("spotify:k:lock"))
    b:unlock("k:lock")
    assert.is_nil(admin:get("spotify:k:lock"))
  end)

  it("owner values differ between caches and between locks", function()
    local a = spotify.cache.redis(server:connect())
    local b = spotify.cache.redis(server:connect())
    assert.is_true(a:lock("x", 5))
    local first = admin:get("spotify:x")
    a:unlock("x")
    assert.is_true(a:lock("x", 5))
    local second = admin:get("spotify:x")
    a:unlock("x")
    assert.is_true(b:lock("x", 5))
    local third = admin:get("spotify:x")
    b:unlock("x")
    assert.is_true(#first >= 16)
    assert.are_not.equal(first, second)
    assert.are_not.equal(first, third)
    assert.are_not.equal(second, third)
  end)

  it("set with a whole ttl given as a float sends an integer", function()
    local c = spotify.cache.redis(server:connect())
    c:set("whole", "v", 60.0)
    assert.equal(60, admin:ttl("spotify:whole"))
  end)

  it("set with a fractional ttl expires in milliseconds", function()
    local c = spotify.cache.redis(server:connect())
    c:set("short", "v", 0.15)
    assert.equal("v", c:get("short"))
    core.sleep(0.3)
    assert.is_nil(c:get("short"))
  end)

  it("a value that is not a token entry is a miss, and is replaced", function()
    for _, junk in ipairs { "{not json", "", "[1,2]", '{"access_token": 5, "expires_at": 1}',
      '{"access_token": "tok-x", "expires_at": 1}', string.rep("\0", 50) } do
      admin:set("spotify:" .. keys.of(f), junk)
      local c = client_with(f, spotify.cache.redis(server:connect()))
      assert(c:track(ID))
      assert.equal(0, c:stats().cache_hits)
      assert.equal(0, c:stats().cache_errors)
      assert.equal(c:access_token(), cjson.decode(admin:get("spotify:" .. keys.of(f))).access_token)
      c:close()
    end
  end)

  it("a key of another type counts a cache error, never fails the call", function()
    admin:rpush("spotify:" .. keys.of(f), "a")
    local c, events = client_with(f, spotify.cache.redis(server:connect()))
    assert(c:track(ID))
    assert.is_true(c:stats().cache_errors >= 1)
    assert.matches("WRONGTYPE", events[1].message)
  end)

  it("a token refused by the API (401) is replaced in Redis for every process", function()
    local a = client_with(f, spotify.cache.redis(server:connect()))
    local b = client_with(f, spotify.cache.redis(server:connect()))
    local old = assert(a:access_token())
    assert.equal(old, b:access_token())
    f:config { revoke = true }
    assert(a:track(ID)) -- 401, renewal, repeat
    local new = a:access_token()
    assert.are_not.equal(old, new)
    assert.equal(new, cjson.decode(admin:get("spotify:" .. keys.of(f))).access_token)
    assert(b:track(ID)) -- 401 with the old token, adopts the new one from Redis
    assert.equal(new, b:access_token())
    assert.equal(2, #f:log_for("/api/token"))
    assert.equal(2, b:stats().cache_hits)
  end)

  it("after a failure the cache reconnects through opts.connect", function()
    local connects = 0
    local cache = spotify.cache.redis(nil, { connect = function()
      connects = connects + 1
      return server:connect()
    end })
    cache:set("k", "v", 60)
    assert.equal(1, connects)
    cache.conn.network.socket:close() -- as if the server had dropped us
    assert.has_error(function() cache:get("k") end)
    assert.equal("v", cache:get("k"))
    assert.equal(2, connects)
  end)

  -- The resty.redis calling convention over a real connection: commands
  -- return `res, err` instead of raising, a miss is a light userdata.
  local function resty_style(conn, log)
    local null = cjson.null
    local resty = {
      set_keepalive = function() log.keepalive = (log.keepalive or 0) + 1; return 1 end,
      close = function() log.closed = true; return 1 end,
      set_timeout = function(_, ms) log.timeout = ms end,
    }
    for _, name in ipairs { "get", "set", "eval", "evalsha", "script" } do
      resty[name] = function(_, ...)
        local ok, res = pcall(conn[name], conn, ...)
        if not ok then return nil, res end
        if res == nil then return null end
        if res == true then return "OK" end
        return res
      end
    end
    return resty
  end

  it("drives resty.redis-style connections (res, err; a null sentinel for misses)", function()
    local log = {}
    local a = spotify.cache.redis(resty_style(server:connect(), log))
    local b = spotify.cache.redis(server:connect())
    assert.equal(1000, log.timeout)
    assert.is_nil(a:get("missing"))
    a:set("k", "v", 60)
    assert.equal("v", b:get("k"))
    assert.is_true(b:lock("l", 5))
    assert.is_false(a:lock("l", 5))
    b:unlock("l")
    assert.is_true(a:lock("l", 5))
    a:unlock("l")
    assert.is_nil(admin:get("spotify:l"))
    assert.is_nil(log.keepalive) -- a connection given without `connect` is kept
    -- a failure answered as nil, err is raised and the connection closed
    admin:rpush("spotify:list", "x")
    local ok, err = pcall(a.get, a, "list")
    assert.is_false(ok)
    assert.matches("^redis: .*WRONGTYPE", err)
    assert.is_true(log.closed)
    assert.has_error(function() a:get("k") end, "redis: connection lost")
  end)

  it("with connect, puts resty connections back in the pool after each command", function()
    local log, connects = {}, 0
    local cache = spotify.cache.redis(nil, { connect = function()
      connects = connects + 1
      return resty_style(server:connect(), log)
    end })
    cache:set("k", "v", 60)
    assert.equal("v", cache:get("k"))
    assert.is_true(cache:lock("l", 5))
    cache:unlock("l")
    assert.equal(4, connects)
    assert.equal(4, log.keepalive)
  end)

  -- INFO commandstats as {command = calls}.
  local function commandstats()
    local p = assert(io.popen(("redis-cli -p %d info commandstats"):format(server.port)))
    local calls = {}
    for name, n in p:read("*a"):gmatch "cmdstat_([%w|_]+):calls=(%d+)" do calls[name] = tonumber(n) end
    p:close()
    return calls
  end

  it("checks the penalty and paces a request in one round trip (one EVALSHA), INFO commandstats", function()
    local N = 50
    local c = client_with(f, spotify.cache.redis(server:connect()), { rate_limit = { requests = 100000, window = 30 } })
    assert(c:track(ID)) -- the token, and the script loaded
    admin:config("resetstat")
    for _ = 1, N do assert(c:track(ID)) end
    local calls = commandstats()
    local scripts = (calls.evalsha or 0) + (calls.eval or 0)
    assert.equal(N, scripts)
    -- everything else Redis ran is the script's own work: the server's
    -- clock, the penalty's GET, the counter and the slot in one hash
    assert.equal(N, calls.time)
    assert.equal(N, calls.get)
    assert.equal(N, calls.hincrby)
    assert.equal(N, calls.hget)
    assert.equal(N, calls.hset)
    for name in pairs(calls) do
      assert.truthy(({ evalsha = 1, eval = 1, time = 1, get = 1, hincrby = 1, hget = 1, hset = 1, pttl = 1,
        pexpire = 1, ["config|resetstat"] = 1 })[name], name .. " was sent")
    end
    assert.equal(0, c:stats().cache_errors)
  end)

  it("a penalty in Redis holds a paced call: the script answers it instead of a place", function()
    local cache = spotify.cache.redis(server:connect())
    local until_ = testing.time() + 0.3
    admin:set("spotify:" .. keys.penalty "test-id", ("%.17g"):format(until_))
    local c = client_with(f, cache, { rate_limit = { requests = 10, window = 30 } })
    assert(c:track(ID))
    assert.equal(1, c:stats().rate_limited_waits)
    assert.is_true(f:log_for("/v1/")[1].arrived >= until_ - 0.01, "sent during the penalty")
    assert.same(cache:pace(keys.penalty "x", keys.pace "x", { requests = 1, window = 5, margin = 0, now = 100 }), 100)
    -- the window runs on the server's clock (5 s after the first start, less
    -- what passed since), answered on the caller's, which claims 1 s passed
    local second = cache:pace(keys.penalty "x", keys.pace "x", { requests = 1, window = 5, margin = 0, now = 101 })
    assert.is_true(second > 105 and second <= 106, tostring(second))
  end)

  for _, paced in ipairs { false, true } do
    it("a penalty written by a clock an hour off holds a call for its time left on the server's clock"
      .. (paced and ", paced" or ""), function()
      local extra = { rate_limit = paced and { requests = 10, window = 30 } or nil }
      -- an hour ahead: read on this clock it would hold for an hour; an hour
      -- behind: read on this clock it would hold nothing
      for _, off in ipairs { 3600, -3600 } do
        f:reset()
        local c = client_with(f, spotify.cache.redis(server:connect()), extra)
        admin:set("spotify:" .. keys.penalty "test-id", ("%.17g 0.6"):format(testing.time() + off + 0.6), "PX", 600)
        local started = core.now()
        assert(c:track(ID))
        local took = core.now() - started
        assert.is_true(c:stats().rate_limited_waits >= 1, "clock off by " .. off)
        assert.is_true(took >= 0.5 and took < 3, ("clock off by %d: held %.2f s"):format(off, took))
        assert.equal(0, c:stats().cache_errors)
      end
    end)
  end

  it("a penalty with no TTL is given one from the end it names, cut to a day", function()
    local c = client_with(f, spotify.cache.redis(server:connect()), { max_retry_after = 0 })
    admin:set("spotify:" .. keys.penalty "test-id", "1e300")
    local _, err = c:track(ID)
    assert.equal("rate_limited", err.kind)
    assert.is_true(err.retry_after <= 86400, tostring(err.retry_after))
    assert.is_true(admin:ttl("spotify:" .. keys.penalty "test-id") > 86000)
    assert.is_true(admin:ttl("spotify:" .. keys.penalty "test-id") <= 86400)
  end)

  it("a spent quota (429 QUOTA_EXCEEDED) is shared: another process's client fails at once, making no request",
    function()
      f:faults { { path = "/v1/", status = 429, reason = "QUOTA_EXCEEDED", headers = { ["Retry-After"] = "600" } } }
      local a = client_with(f, spotify.cache.redis(server:connect()))
      local _, err = a:track(ID)
      assert.equal("QUOTA_EXCEEDED", err.reason)
      for _, paced in ipairs { false, true } do
        local b = client_with(f, spotify.cache.redis(server:connect()),
          { max_retry_after = 3600, rate_limit = paced and { requests = 10, window = 30 } or nil })
        _, err = b:track(ID)
        assert.equal("rate_limited", err.kind)
        assert.equal("QUOTA_EXCEEDED", err.reason)
        assert.is_true(err.retry_after > 590 and err.retry_after <= 600, tostring(err.retry_after))
        assert.equal(0, b:stats().rate_limited_waits)
      end
      assert.equal(1, #f:log_for "/v1/")
    end)

  for _, dialect in ipairs { "lua-redis", "resty" } do
    it("the pace script outlives a Redis that forgot it (NOSCRIPT: EVAL once, EVALSHA again) (" .. dialect .. ")",
      function()
        local conn = server:connect()
        local cache = spotify.cache.redis(dialect == "resty" and resty_style(conn, {}) or conn)
        local c = client_with(f, cache, { rate_limit = { requests = 1000, window = 30 } })
        assert(c:track(ID))
        admin:script("flush") -- as after a restart
        admin:config("resetstat")
        assert(c:track(ID))
        assert(c:track(ID))
        local calls = commandstats()
        assert.equal(1, calls.eval)
        assert.equal(2, calls.evalsha) -- the one refused, then the one after EVAL loaded it again
        assert.equal(0, c:stats().cache_errors)
      end)
  end

  it("rejects what is not a connection", function()
    assert.has_error(function() spotify.cache.redis({}) end)
    assert.has_error(function() spotify.cache.redis() end)
    assert.has_error(function() spotify.cache.redis(server:connect(), { prefix = 5 }) end)
    assert.has_error(function() spotify.cache.redis(nil, { connect = "x" }) end)
    assert.has_error(function() spotify.cache.redis(server:connect(), { timeout = 0 }) end)
  end)
end)

describe("redis cache when Redis fails", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  local function assert_falls_back(cache, budget)
    local c, events = client_with(f, cache)
    local t0 = core.now()
    assert(c:track(ID))
    assert(c:track(ID))
    assert.is_true(core.now() - t0 < budget, "took " .. (core.now() - t0))
    assert.is_true(c:stats().cache_errors >= 1)
    assert.is_true(#events >= 1)
    assert.equal(1, c:stats().token_fetches)
    for _, e in ipairs(events) do
      assert.falsy(e.message:find("test-secret", 1, true))
      assert.falsy(e.message:find("tok-", 1, true))
    end
    return c
  end

  it("down (killed): every call succeeds, the process fetches its own token", function()
    local server = redis_server.start()
    local cache = spotify.cache.redis(server:connect())
    server:kill()
    finally(function() server:stop() end)
    assert_falls_back(cache, 5)
  end)

  it("down from the start: connect raises inside the cache, counted", function()
    local server = redis_server.start()
    local port = server.port
    server:stop()
    local cache = spotify.cache.redis(nil, { connect = function()
      return redis_server.client_library().connect("127.0.0.1", port)
    end })
    assert_falls_back(cache, 5)
  end)

  it("hung (SIGSTOP): the cache's timeout bounds the wait", function()
    local server = redis_server.start()
    finally(function() server:stop() end)
    local cache = spotify.cache.redis(server:connect(), { timeout = 0.2 })
    server:pause()
    assert_falls_back(cache, 3)
    server:resume()
  end)

  it("hung: a connection without a timeout of its own gets the default (1 s)", function()
    local server = redis_server.start()
    finally(function() server:stop() end)
    local cache = spotify.cache.redis(server:connect())
    server:pause()
    assert_falls_back(cache, 4)
    server:resume()
  end)

  it("hung: timeout = false leaves the connection's own timeout", function()
    local server = redis_server.start()
    finally(function() server:stop() end)
    local cache = spotify.cache.redis(server:connect(0.3), { timeout = false })
    server:pause()
    assert_falls_back(cache, 3)
    server:resume()
  end)

  it("answering garbage: counted, never fails the call", function()
    local g = redis_server.garbage()
    finally(function() g.stop() end)
    local cache = spotify.cache.redis(redis_server.client_library().connect("127.0.0.1", g.port))
    assert_falls_back(cache, 5)
  end)
end)
