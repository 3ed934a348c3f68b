-- One contract for every cache backend: memory, file, Redis, a custom
-- table, and (inside nginx) the shared dict. A client on each shares its
-- token with a second client of the same store.
local spotify = require "spotify"
local core = require "spotify.core"
local cjson = require "cjson"
local contract = require "spec.support.cache_contract"
local fake = require "spec.support.fake"
local nginx = require "spec.support.nginx"
local redis_server = require "spec.support.redis"
local files = require "spec.support.files"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

-- A custom cache, written as a user would: a plain table with TTLs.
local function custom_store()
  local entries = {}
  return function()
    return {
      get = function(_, key)
        local e = entries[key]
        if e and e.expires > core.now() then return e.value end
      end,
      set = function(_, key, value, ttl) entries[key] = { value = value, expires = core.now() + ttl } end,
    }
  end
end

local backends = {}

describe("cache contract", function()
  local dir, redis
  setup(function()
    dir = files.read_command "mktemp -d"
    redis = redis_server.start()
  end)
  teardown(function()
    if redis then redis:stop() end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  backends.memory = function()
    local shared = spotify.cache.memory()
    return function() return shared end
  end
  backends.file = function()
    local path = dir .. "/contract-" .. tostring({}):match "0x(%x+)" .. ".json"
    return function() return spotify.cache.file(path) end
  end
  backends.custom = custom_store
  backends.redis = function()
    local prefix = "contract" .. tostring({}):match "0x(%x+)" .. ":"
    return function() return spotify.cache.redis(redis:connect(), { prefix = prefix }) end
  end

  for _, name in ipairs { "memory", "file", "custom", "redis" } do
    describe(name, function()
      for _, c in ipairs(contract.checks(core.sleep)) do
        it(c.name, function() c.fn(backends[name]()) end)
      end

      it("carries one token for two clients", function()
        local f = fake.start {}
        finally(function() f:stop() end)
        local make = backends[name]()
        local a = spotify.client(fake.client_opts(f, { cache = make() }))
        local b = spotify.client(fake.client_opts(f, { cache = make() }))
        assert(a:track(ID))
        assert(b:track(ID))
        assert.equal(1, #f:log_for "/api/token")
        assert.equal(1, b:stats().cache_hits)
      end)
    end)
  end
end)

describe("cache contract inside nginx", function()
  local server
  setup(function()
    nginx.check()
    server = nginx.start {
      workers = 1,
      http = nginx.package_paths() .. "\n  lua_shared_dict contract 1m;",
      server = [[
    location = /contract {
      content_by_lua_block {
        local spotify = require "spotify"
        local contract = require "cache_contract"
        local results = contract.run(function() return spotify.cache.shdict(ngx.shared.contract) end, ngx.sleep)
        ngx.say(require("cjson").encode(results))
      }
    }]],
      files = { ["cache_contract.lua"] = assert(io.open("spec/support/cache_contract.lua")):read "*a" },
    }
  end)
  teardown(function() if server then server:stop() end end)

  it("the shared dict keeps every check", function()
    local status, body = server:get "/contract"
    assert.equal(200, status, body)
    local results = cjson.decode(body)
    assert.is_true(#results >= 7)
    for _, r in ipairs(results) do assert.is_true(r.ok, r.name .. ": " .. tostring(r.message)) end
  end)
end)
