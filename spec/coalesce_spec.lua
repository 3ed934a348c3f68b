-- Coalescing: identical GETs in flight share one request and its outcome,
-- within a client (started requests, plural calls, nginx light threads;
-- with no response cache at all) and across processes through a store
-- with `lock`. Counts come from the fake's log.
local cjson = require "cjson"
local spotify = require "spotify"
local core = require "spotify.core"
local testing = core.testing()
local fake = require "spec.support.fake"
local fleet = require "spec.support.fleet"
local nginx = require "spec.support.nginx"
local redis_server = require "spec.support.redis"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

local function run_all(c, reqs, limit)
  local give_up = core.now() + (limit or 10)
  while c:poll(0.01) > 0 do
    assert(core.now() < give_up, "started requests did not finish")
  end
  local out = {}
  for i, r in ipairs(reqs) do out[i] = { r:result() } end
  return out
end

describe("coalescing within a client", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  local function client(extra)
    local o = { max_retries = 0 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(fake.client_opts(f, o))
  end

  it("sends 16 identical started requests as one; each caller gets its own copy", function()
    local c = client()
    local reqs = {}
    for i = 1, 16 do reqs[i] = c:start("track", ID) end
    local results = run_all(c, reqs)
    assert.equal(1, #f:log_for "/v1/tracks/")
    assert.equal(15, c:stats().coalesced)
    local name = results[1][1].name
    results[1][1].name = "changed"
    for i = 2, 16 do
      assert.equal(ID, results[i][1].id)
      assert.equal(name, results[i][1].name)
    end
    c:close()
  end)

  it("shares a failure too: 16 callers, one request, 16 errors", function()
    local c = client()
    f:faults { { path = "/v1/tracks", status = 500, delay = 0.1 } }
    local reqs = {}
    for i = 1, 16 do reqs[i] = c:start("track", ID) end
    local results = run_all(c, reqs)
    assert.equal(1, #f:log_for "/v1/tracks/")
    for i = 1, 16 do
      assert.is_nil(results[i][1])
      assert.equal("server", results[i][2].kind)
    end
    c:close()
  end)

  it("shares the single lookups of a plural call", function()
    local c = client { batch = false }
    local all = assert(c:tracks { ID, ID, ID, ID, ID })
    assert.equal(5, #all)
    for i = 1, 5 do assert.equal(ID, all[i].id) end
    assert.equal(1, #f:log_for "/v1/tracks/")
    assert.equal(4, c:stats().coalesced)
    c:close()
  end)

  it("never joins different URLs", function()
    local c = client()
    local reqs = {
      c:start("track", ID), c:start("track", ID, { market = "DE" }), c:start("album", "4EcfbzCtbJDk2wMwhT4D1h"),
    }
    for _, r in ipairs(run_all(c, reqs)) do assert(r[1]) end
    assert.equal(3, #f:log_for "/v1/")
    assert.equal(0, c:stats().coalesced)
    c:close()
  end)

  it("lets the followers ask alone when the request they ride on is cancelled", function()
    local c = client()
    f:faults { { path = "/v1/tracks", delay = 0.3 } }
    local reqs = { c:start("track", ID), c:start("track", ID), c:start("track", ID) }
    c:poll(0.05)
    assert.is_true(reqs[1]:cancel())
    local results = run_all(c, { reqs[2], reqs[3] })
    for _, r in ipairs(results) do assert.equal(ID, r[1].id) end
    c:close()
  end)

  it("rides on one request after a response cache miss as well", function()
    local c = client { responses = spotify.responses { ttl = 3600 } }
    local reqs = {}
    for i = 1, 8 do reqs[i] = c:start("track", ID) end
    run_all(c, reqs)
    assert(c:track(ID))
    assert.equal(1, #f:log_for "/v1/tracks/")
    assert.equal(7, c:stats().coalesced)
    assert.equal(1, c:stats().response_hits)
    c:close()
  end)
end)

describe("coalescing inside nginx (light threads of one worker)", function()
  local f, server
  local APP = [=[
local spotify = require "spotify"
local cjson = require "cjson"
local options = require "spec_options"
local app, c = {}, nil
function app.many()
  c = c or spotify.client(options)
  local threads, out = {}, {}
  for i = 1, 20 do
    threads[i] = ngx.thread.spawn(function() return c:track(ngx.var.arg_id) end)
  end
  for i = 1, 20 do
    local _, t, err = ngx.thread.wait(threads[i])
    out[i] = t and t.id or tostring(err)
  end
  ngx.say(cjson.encode { ids = out, coalesced = c:stats().coalesced })
end
return app
]=]
  setup(function()
    f = fake.start()
    server = nginx.start {
      workers = 1,
      http = nginx.package_paths() .. "\n  lua_socket_log_errors off;\n  init_by_lua_block { require 'spotify' }",
      server = "location = /many { content_by_lua_block { require('spec_app').many() } }",
      files = { ["spec_app.lua"] = APP, ["spec_options.lua"] = ("return { client_id = 'test-id', "
        .. "client_secret = 'test-secret', api_base = %q, token_url = %q }"):format(f.api_base, f.token_url) },
    }
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("sends 20 identical lookups of 20 light threads as one request", function()
    f:faults { { path = "/v1/tracks", delay = 0.1 } }
    local status, body = server:get("/many?id=" .. ID)
    assert.equal(200, status, body)
    local reply = cjson.decode(body)
    for i = 1, 20 do assert.equal(ID, reply.ids[i]) end
    assert.equal(19, reply.coalesced)
    assert.equal(1, #f:log_for "/v1/tracks/")
  end)
end)

describe("coalescing across processes (a Redis store with lock)", function()
  local f, redis
  setup(function()
    f = fake.start()
    redis = redis_server.start()
  end)
  teardown(function()
    if redis then redis:stop() end
    if f then f:stop() end
  end)

  it("4 processes, 300 calls each over the same 100 IDs, reach Spotify at most 100 times", function()
    local lua, build = fleet.runtime()
    local start_at = testing.time() + 1.5
    local cmd = {}
    local dir = fake.workdir()
    for i = 1, 4 do
      cmd[#cmd + 1] = ("%s spec/support/responses_worker.lua build=%s api_base=%s token_url=%s port=%d "
        .. "calls=300 ids=100 start_at=%.3f > %s/rw%d.out 2>&1 &"):format(lua, build, f.api_base,
        f.token_url, redis.port, start_at, dir, i)
    end
    local proc = assert(io.popen(table.concat(cmd, " ") .. " wait"))
    proc:read "*a"
    proc:close()
    local coalesced, shared = 0, 0
    for i = 1, 4 do
      local text = assert(io.open(("%s/rw%d.out"):format(dir, i))):read "*a"
      local ok, summary = pcall(cjson.decode, text)
      assert(ok, "worker " .. i .. ": " .. text)
      assert.equal(300, summary.ok, summary.first_error)
      coalesced = coalesced + summary.stats.coalesced
      shared = shared + summary.stats.response_shared_hits
    end
    local asked = #f:log_for "/v1/tracks/"
    assert.is_true(asked <= 100, asked .. " requests")
    assert.is_true(asked >= 100) -- each ID once at least: nothing was cached before
    assert.equal(300, coalesced + shared) -- the other processes' first calls of each ID
  end)
end)
