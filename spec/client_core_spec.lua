-- The client is the C core's userdata: it is collected (and its
-- connections closed) when dropped, on every interpreter; renewals share
-- their outcome; started requests of a closed client finish; numbers are
-- integers where Lua has them.
local spotify = require "spotify"
local core = require "spotify.core"
local fake = require "spec.support.fake"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local IDS = {
  "4iV5W9uYEdYUVa79Axb7Rh", "1301WleyT98MSxVHPZCA6M", "3n3Ppam7vgaVa1iaRUc9Lp", "0eGsygTp906u18L0Oimnem",
  "6rqhFgbbKwnb9MLmUQDhG6", "2TpxZ7JUBn3uw46aR7qd6V", "7ouMYWpwJ422jRcDASZB7P", "5CQ30WqJwcep0pYcV4AMNc",
}

-- Sockets this process has open, from /proc.
local function open_sockets()
  local stat = assert(io.open("/proc/self/stat")):read("*l")
  local pid = stat:match "^(%d+)"
  local p = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  local n = 0
  for line in p:lines() do
    if line:find("socket:", 1, true) then n = n + 1 end
  end
  p:close()
  return n
end

local function full_gc()
  for _ = 1, 4 do collectgarbage "collect" end
end

describe("client life", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  it("a dropped client is collected and its connections close", function()
    full_gc()
    local before = open_sockets()
    local seen = setmetatable({}, { __mode = "k" })
    for _ = 1, 5 do
      local c = spotify.client(fake.client_opts(f))
      assert(c:track(ID))
      seen[c] = true
    end
    assert.is_true(open_sockets() >= before + 5, "each client keeps its connection open")
    full_gc()
    assert.is_nil(next(seen), "a dropped client was never collected")
    assert.is_true(open_sockets() <= before, "connections of dropped clients stay open")
  end)

  it("thousands of dropped clients are all collected", function()
    local seen = setmetatable({}, { __mode = "k" })
    for _ = 1, 2000 do seen[spotify.client { client_id = "id", client_secret = "s" }] = true end
    full_gc()
    assert.is_nil(next(seen))
  end)

  it("holds no reference to the options, the cache or on_request beyond its life", function()
    local seen = setmetatable({}, { __mode = "k" })
    do
      local cache, hook = spotify.cache.memory(), function() end
      local c = spotify.client(fake.client_opts(f, { cache = cache, on_request = hook }))
      assert(c:track(ID))
      seen[cache], seen[hook] = true, true
    end
    full_gc()
    assert.is_nil(next(seen))
  end)
end)

describe("a renewal that fails", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function()
    f:reset()
    f:faults { { path = "/api/token", status = 503, times = -1 } }
  end)

  local function client()
    return spotify.client(fake.client_opts(f, { max_retries = 2, batch = false }))
  end

  it("is shared by 8 concurrent calls: 3 token requests, every call fails with kind server", function()
    local c = client()
    local list, err = c:tracks(IDS)
    assert.is_nil(list)
    assert.equal("server", err.kind)
    assert.equal(503, err.status)
    assert.is_true(#f:log_for "/api/token" <= 3, #f:log_for "/api/token" .. " token requests")
    assert.equal(3, #f:log_for "/api/token")
    assert.equal(0, #f:log_for "/v1/")
  end)

  it("is shared by 4 started requests: 3 token requests, each fails with kind server", function()
    local c = client()
    local reqs = {}
    for i = 1, 4 do reqs[i] = c:start("track", IDS[i]) end
    local give_up = core.now() + 20
    local function all_done()
      for _, r in ipairs(reqs) do if not r:done() then return false end end
      return true
    end
    while not all_done() and core.now() < give_up do c:poll(0.05) end
    assert.is_true(all_done())
    for _, r in ipairs(reqs) do
      local v, err = r:result()
      assert.is_nil(v)
      assert.equal("server", err.kind)
    end
    assert.equal(3, #f:log_for "/api/token")
  end)

  it("names the token endpoint in the error", function()
    local c = client()
    local _, err = c:track(ID)
    assert.equal("POST", err.method)
    assert.equal(f.token_url, err.url)
  end)
end)

describe("started requests of a closed client", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  it("finish with kind closed, in flight or waiting", function()
    local c = spotify.client(fake.client_opts(f))
    f:faults { { path = "/v1/tracks", delay = 1, times = -1 } }
    local a, b = c:start("track", ID), c:start("tracks", IDS)
    c:poll(0.05)
    assert.is_false(a:done())
    c:close()
    for _, r in ipairs { a, b } do
      assert.is_true(r:done())
      local v, err = r:result()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
    end
    assert.equal(0, c:poll(0.05))
  end)

  it("a client closed from on_request finishes its call with kind closed", function()
    local c
    c = spotify.client(fake.client_opts(f, { on_request = function() c:close() end }))
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("closed", err.kind)
    local _, err2 = c:track(ID)
    assert.equal("closed", err2.kind)
  end)
end)

describe("a client's own hook", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  it("cannot make requests on its client: the hook's call raises, the call itself goes on", function()
    local c, raised
    c = spotify.client(fake.client_opts(f, { on_request = function(info)
      if info.url and info.url:find("/v1/markets", 1, true) then
        local ok, err = pcall(c.search, c, "a", { limit = 50 })
        raised = not ok and tostring(err)
      end
    end }))
    local markets = assert(c:markets())
    assert.is_table(markets)
    assert.matches("from inside its own on_request", raised)
  end)

  it("cannot cancel the started request it is called for", function()
    local c, req, raised
    c = spotify.client(fake.client_opts(f, { on_request = function(info)
      if info.url and info.url:find("/v1/", 1, true) then
        local ok, err = pcall(req.cancel, req)
        raised = not ok and tostring(err)
      end
    end }))
    req = c:start("track", ID)
    local give_up = core.now() + 5
    while not req:done() and core.now() < give_up do c:poll(0.05) end
    assert.equal(ID, assert(req:result()).id)
    assert.matches("from inside its own on_request", raised)
  end)
end)

describe("a slow renewal", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  it("is not taken over while it retries: 8 started requests, one attempt per retry", function()
    f:faults { { path = "/api/token", delay = 1.5, times = -1 } }
    local c = spotify.client(fake.client_opts(f, { timeout = 1, max_retries = 3 }))
    local reqs = {}
    for i = 1, 8 do reqs[i] = c:start("track", IDS[i]) end
    local give_up = core.now() + 60
    local function all_done()
      for _, r in ipairs(reqs) do if not r:done() then return false end end
      return true
    end
    while not all_done() and core.now() < give_up do c:poll(0.05) end
    assert.is_true(all_done())
    for _, r in ipairs(reqs) do assert.equal("timeout", select(2, r:result()).kind) end
    assert.equal(4, #f:log_for "/api/token")
  end)

  it("closed mid-renewal releases the file cache's renewal lock", function()
    local dir = io.popen("mktemp -d"):read "*l"
    finally(function() os.execute("rm -rf '" .. dir .. "'") end)
    local cache = spotify.cache.file(dir .. "/tokens.json")
    f:faults { { path = "/api/token", delay = 0.5, times = 1 } }
    local a = spotify.client(fake.client_opts(f, { cache = cache, timeout = 3 }))
    a:start("track", ID)
    a:poll(0.05) -- the token request is on the wire, the lock held
    a:close()
    -- b sees the same file through a wrapper that records each lock answer:
    -- a lock still held would answer false, and b would wait
    local answers = {}
    local seen = { get = function(_, ...) return cache:get(...) end, set = function(_, ...) return cache:set(...) end,
      unlock = function(_, ...) return cache:unlock(...) end,
      lock = function(_, ...)
        local got = cache:lock(...)
        answers[#answers + 1] = got
        return got
      end }
    local b = spotify.client(fake.client_opts(f, { cache = seen, timeout = 3 }))
    assert(b:access_token())
    assert.same({ true }, answers, "the renewal lock was still held")
  end)
end)

describe("numbers", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)

  it("integral JSON numbers are integers on Lua 5.3+, others stay floats", function()
    local c = spotify.client(fake.client_opts(f))
    local t = assert(c:track(ID))
    assert.equal(221200, t.duration_ms)
    assert.equal("221200", tostring(t.duration_ms))
    local math_type = rawget(math, "type") -- Lua 5.3+
    if math_type then
      assert.equal("integer", math_type(t.duration_ms))
      assert.equal("integer", math_type(t.album.total_tracks))
      local v = assert(core.decode '{"a":1.5,"b":[3,4.25,1e2],"c":-0.0}')
      assert.equal("float", math_type(v.a))
      assert.equal("integer", math_type(v.b[1]))
      assert.equal("float", math_type(v.b[2]))
      assert.equal("integer", math_type(v.b[3]))
      assert.equal("integer", math_type(assert(core.decode '{"big":9007199254740992}').big))
      assert.equal("float", math_type(assert(core.decode '{"big":1e300}').big))
    end
  end)
end)

describe("inside nginx", function()
  local nginx = require "spec.support.nginx"
  local cjson = require "cjson"
  local f, server
  setup(function()
    nginx.check()
    f = fake.start {}
    server = nginx.start {
      workers = 1,
      http = nginx.package_paths(),
      server = ([[
    location = /start {
      content_by_lua_block {
        local spotify = require "spotify"
        local c = spotify.client { client_id = "test-id", client_secret = "test-secret",
          api_base = %q, token_url = %q }
        local ok, err = pcall(c.start, c, "track", %q)
        local ok2, err2 = pcall(c.poll, c)
        ngx.say(require("cjson").encode { ok = ok, err = tostring(err), poll_ok = ok2, poll_err = tostring(err2) })
      }
    }
    location = /renewal {
      content_by_lua_block {
        local spotify = require "spotify"
        local c = spotify.client { client_id = "test-id", client_secret = "test-secret",
          api_base = %q, token_url = %q, max_retries = 2, batch = false }
        local list, err = c:tracks(require("cjson").decode(ngx.unescape_uri(ngx.var.arg_ids)))
        ngx.say(require("cjson").encode { list = list ~= nil, kind = err and err.kind })
      }
    }]]):format(f.api_base, f.token_url, ID, f.api_base, f.token_url),
    }
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("start and poll raise an error that names ngx.thread.spawn, and send nothing", function()
    f:reset()
    local status, body = server:get "/start"
    assert.equal(200, status, body)
    local r = cjson.decode(body)
    assert.is_false(r.ok)
    assert.truthy(r.err:find("ngx.thread.spawn", 1, true), r.err)
    assert.is_false(r.poll_ok)
    assert.truthy(r.poll_err:find("ngx.thread.spawn", 1, true), r.poll_err)
    assert.equal(0, #f:log())
  end)

  it("8 light threads share one failing renewal: 3 token requests, kind server", function()
    f:reset()
    f:faults { { path = "/api/token", status = 503, times = -1 } }
    local status, body = server:get("/renewal?ids=" .. cjson.encode(IDS):gsub("[^%w]", function(ch)
      return ("%%%02X"):format(ch:byte())
    end))
    assert.equal(200, status, server:error_log())
    local r = cjson.decode(body)
    assert.is_false(r.list)
    assert.equal("server", r.kind)
    assert.equal(3, #f:log_for "/api/token")
    assert.equal(0, #f:log_for "/v1/")
  end)
end)
