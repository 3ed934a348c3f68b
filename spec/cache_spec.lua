-- Token caches: memory (shared between clients), file (0600, atomic,
-- corrupt = miss, shared between processes) and custom objects.
local spotify = require "spotify"
local core = require "spotify.core"
local fake = require "spec.support.fake"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("*l")
  p:close()
  return d
end

local support = require "spec.support.files"
local read, write = support.read_file, support.write_file

local interpreter = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))

describe("memory cache", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  it("is shared by clients of the same app", function()
    local cache = spotify.cache.memory()
    local a = spotify.client(fake.client_opts(f, { cache = cache }))
    local b = spotify.client(fake.client_opts(f, { cache = cache }))
    assert(a:track(ID))
    assert(b:track(ID))
    assert.equal(1, #f:log_for("/api/token"))
    assert.equal(1, b:stats().cache_hits)
    assert.equal(a:access_token(), b:access_token())
  end)

  it("never hands one app's token to another", function()
    f:config { credentials = { ["test-id"] = "test-secret", other = "other-secret" } }
    local cache = spotify.cache.memory()
    local a = spotify.client(fake.client_opts(f, { cache = cache }))
    local b = spotify.client(fake.client_opts(f,
      { cache = cache, client_id = "other", client_secret = "other-secret" }))
    assert.are_not.equal(a:access_token(), b:access_token())
    assert.equal(2, #f:log_for("/api/token"))
  end)

  it("expires entries after their ttl", function()
    local m = spotify.cache.memory()
    m:set("k", "v", 0.05)
    assert.equal("v", m:get("k"))
    core.sleep(0.1)
    assert.is_nil(m:get("k"))
  end)
end)

describe("file cache", function()
  local f, dir
  setup(function() f = fake.start {} end)
  teardown(function()
    if f then f:stop() end
  end)
  before_each(function()
    f:reset()
    dir = tmpdir()
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("stores the token with mode 0600 and without the secret", function()
    local path = dir .. "/tokens.json"
    local c = spotify.client(fake.client_opts(f, { cache = spotify.cache.file(path) }))
    local tok = assert(c:access_token())
    local p = io.popen("stat -c %a '" .. path .. "'")
    assert.equal("600", p:read("*l"))
    p:close()
    local text = read(path)
    assert.truthy(text:find(tok, 1, true))
    assert.falsy(text:find("test-secret", 1, true))
    -- a second client (a new process would do the same) reads it back
    local c2 = spotify.client(fake.client_opts(f, { cache = spotify.cache.file(path) }))
    assert.equal(tok, c2:access_token())
    assert.equal(1, #f:log_for("/api/token"))
    assert.equal(1, c2:stats().cache_hits)
  end)

  it("treats a corrupt, empty or foreign file as a miss and repairs it", function()
    local path = dir .. "/tokens.json"
    for _, junk in ipairs { "{not json", "", "[1,2,3]", '{"test-id": 5}', string.rep("\0", 100),
      '{"test-id": {"value": "{\\"access_token\\": 1}", "expires": 9e99}}' } do
      write(path, junk)
      local c = spotify.client(fake.client_opts(f, { cache = spotify.cache.file(path) }))
      assert(c:track(ID))
      assert.equal(0, c:stats().cache_hits)
      assert.equal(0, c:stats().cache_errors)
      assert.truthy(read(path):find("access_token", 1, true))
      c:close()
    end
  end)

  it("writes atomically: no temporary files left, the old content replaced whole", function()
    local path = dir .. "/tokens.json"
    local cache = spotify.cache.file(path)
    for i = 1, 20 do cache:set("k" .. i, ("x"):rep(i * 100), 60) end
    assert.equal(("x"):rep(2000), cache:get("k20"))
    assert.equal(("x"):rep(100), cache:get("k1"))
    local p = io.popen("ls -A '" .. dir .. "'")
    local files = p:read("*a")
    p:close()
    assert.falsy(files:find("tmp", 1, true))
  end)

  it("an unwritable path counts a cache error but never fails the call", function()
    local c = spotify.client(fake.client_opts(f, { cache = spotify.cache.file(dir .. "/no/such/dir/t.json") }))
    assert(c:track(ID))
    assert.is_true(c:stats().cache_errors >= 1)
  end)

  it("is shared by several processes, with one token fetch among them", function()
    local path = dir .. "/tokens.json"
    local script = dir .. "/worker.lua"
    write(script, ([[
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      package.cpath = "%s/?.so;" .. package.cpath
      local spotify = require "spotify"
      local c = spotify.client { client_id = "test-id", client_secret = "test-secret",
        api_base = "%s", token_url = "%s", cache = spotify.cache.file("%s") }
      local t = assert(c:track("%s"))
      io.write(assert(c:access_token()), "\n")
    ]]):format(os.getenv("SPOTIFY_BUILD") or "build/lua5.4", f.api_base, f.token_url, path, ID))
    f:config { faults = { { path = "/api/token", delay = 0.5 } } } -- keep the first fetch in flight
    local cmd = {}
    for i = 1, 6 do
      cmd[#cmd + 1] = ("%s %s > %s/out%d 2>&1 &"):format(interpreter, script, dir, i)
    end
    os.execute(table.concat(cmd, " ") .. " wait")
    local tokens = {}
    for i = 1, 6 do
      local out = read(dir .. "/out" .. i)
      assert.matches("^tok%-", out)
      tokens[out] = true
    end
    local n = 0
    for _ in pairs(tokens) do n = n + 1 end
    assert.equal(1, n)
    assert.equal(1, #f:log_for("/api/token"))
  end)
end)

describe("custom cache objects", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)

  it("get/set are called with the token's key (a digest of the credentials) and a ttl", function()
    local store, calls = {}, {}
    local cache = {
      get = function(_, k) calls[#calls + 1] = "get " .. k; return store[k] end,
      set = function(_, k, v, ttl) calls[#calls + 1] = "set " .. k; store[k] = v; assert(ttl > 3000) end,
    }
    local c = spotify.client(fake.client_opts(f, { cache = cache }))
    assert(c:track(ID))
    -- the app's shared 429 penalty is looked up before the request, then the token
    local token, _, penalty = require("spec.support.keys").of(f)
    assert.same({ "get " .. penalty, "get " .. token, "set " .. token }, calls)
  end)

  it("a cache that raises never fails the call", function()
    local cache = { get = function() error("down") end, set = function() error("down") end,
      lock = function() error("down") end, unlock = function() error("down") end }
    local c = spotify.client(fake.client_opts(f, { cache = cache }))
    assert(c:track(ID))
    assert.is_true(c:stats().cache_errors >= 2)
  end)
end)
