-- The response cache inside nginx: a process tier per worker in front of a
-- shared dict every worker reads, over cosockets (the cache actions of the
-- nginx driver). Counts come from the fake's log.
local cjson = require "cjson"
local fake = require "spec.support.fake"
local nginx = require "spec.support.nginx"

-- /track?id=ID&mutate=1: client:track through a client whose responses
-- store is ngx.shared.spotify_responses; answers {name, pid, stats}.
local APP = [=[
local spotify = require "spotify"
local cjson = require "cjson"
local options = require "spec_options"
local app, c, cw, cr = {}, nil, nil, nil

local function client()
  if c then return c end
  local o = {}
  for k, v in pairs(options) do o[k] = v end
  o.responses = spotify.responses {
    store = spotify.cache.shdict(ngx.shared.spotify_responses), ttl = { track = 3600 },
  }
  c = spotify.client(o)
  return c
end

function app.track()
  local a = ngx.req.get_uri_args()
  local t, err = client():track(a.id)
  local name = t and t.name
  if t and a.mutate then t.name = "changed" end
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode { name = name, err = err and err.kind, pid = ngx.worker.pid(), stats = client():stats() })
end

-- /window_track?id=ID: the same with batch_window too, as the README shows them
function app.window_track()
  if not cw then
    local o = {}
    for k, v in pairs(options) do o[k] = v end
    o.responses = spotify.responses { store = spotify.cache.shdict(ngx.shared.spotify_responses), ttl = 3600 }
    o.batch_window = 0.005
    cw = spotify.client(o)
  end
  local t, err = cw:track(ngx.var.arg_id)
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode { id = t and t.id, err = err and err.kind })
end

-- /reval_track?id=ID: answers kept 1 s, then asked about with their ETag
function app.reval_track()
  if not cr then
    local o = {}
    for k, v in pairs(options) do o[k] = v end
    o.responses = spotify.responses { store = spotify.cache.shdict(ngx.shared.spotify_responses), ttl = 1 }
    cr = spotify.client(o)
  end
  local t, err = cr:track(ngx.var.arg_id)
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode { id = t and t.id, err = err and err.kind, stats = cr:stats() })
end

return app
]=]

local function ids(n) return fake.ids(n, "N") end

describe("the response cache inside nginx (2 workers, shdict store)", function()
  local f, server
  setup(function()
    f = fake.start()
    server = nginx.start {
      workers = 2,
      http = table.concat({
        nginx.package_paths(),
        "lua_shared_dict spotify_tokens 1m;",
        "lua_shared_dict spotify_responses 8m;",
        "lua_socket_log_errors off;",
        "init_by_lua_block { require 'spotify' }",
      }, "\n  "),
      server = "location = /track { content_by_lua_block { require('spec_app').track() } }\n"
        .. "location = /window_track { content_by_lua_block { require('spec_app').window_track() } }\n"
        .. "location = /reval_track { content_by_lua_block { require('spec_app').reval_track() } }",
      files = { ["spec_app.lua"] = APP, ["spec_options.lua"] = "return " .. ([[{ client_id = %q,
        client_secret = %q, api_base = %q, token_url = %q }]]):format("test-id", "test-secret",
        f.api_base, f.token_url) },
    }
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("asks Spotify once per ID for 400 requests over 20 IDs on both workers", function()
    local list = ids(20)
    for _, id in ipairs(list) do -- each ID once, in whichever worker takes it
      local status, body = server:get("/track?mutate=1&id=" .. id)
      assert.equal(200, status, body)
    end
    assert.equal(20, #f:log_for "/v1/tracks/")
    local paths = {}
    for i = 1, 400 do paths[i] = "/track?mutate=1&id=" .. list[(i - 1) % 20 + 1] end
    local results = server:parallel(paths, 50)
    local pids, workers, shared = {}, 0, 0
    for i = 1, 400 do
      assert.equal(200, results[i].status, results[i].body)
      local reply = cjson.decode(results[i].body)
      assert.is_nil(reply.err)
      assert.equal("Austerity", reply.name) -- never what an earlier caller changed it to
      if not pids[reply.pid] then pids[reply.pid], workers = true, workers + 1 end
      shared = math.max(shared, reply.stats.response_shared_hits)
    end
    assert.equal(2, workers)
    assert.is_true(shared > 0)
    assert.equal(20, #f:log_for "/v1/tracks/")
  end)

  it("with batch_window too: 2,000 requests over 50 IDs cost at most 50 requests and 100 IDs", function()
    local list = fake.ids(50, "W")
    local mark = #f:log()
    local paths = {}
    for i = 1, 2000 do paths[i] = "/window_track?id=" .. list[(i - 1) % 50 + 1] end
    local results = server:parallel(paths, 40)
    for i = 1, 2000 do
      assert.equal(200, results[i].status, results[i].body)
      local reply = cjson.decode(results[i].body)
      assert.is_nil(reply.err)
      assert.equal(list[(i - 1) % 50 + 1], reply.id)
    end
    local log, asked = f:log_for("/v1/tracks", mark), 0
    for _, e in ipairs(log) do
      local ids_asked = e.query:match "ids=([^&]*)"
      asked = asked + (ids_asked and select(2, ids_asked:gsub("[^,]+", "")) or 1)
    end
    assert.is_true(#log <= 50, #log .. " requests")
    assert.is_true(asked <= 100, asked .. " IDs asked")
  end)

  it("asks about an expired answer with its ETag over cosockets; a 304 renews it", function()
    local id = fake.ids(1, "R")[1]
    local mark = #f:log()
    local status, body = server:get("/reval_track?id=" .. id)
    assert.equal(200, status, body)
    require("socket").sleep(1.5) -- past the ttl of 1 s, whichever worker asks next
    status, body = server:get("/reval_track?id=" .. id)
    assert.equal(200, status, body)
    local reply = cjson.decode(body)
    assert.equal(id, reply.id)
    assert.equal(1, reply.stats.response_revalidated)
    local log = f:log_for("/v1/tracks/", mark)
    assert.equal(2, #log)
    assert.equal(304, log[2].status)
    assert.matches('^"%x+"$', log[2].if_none_match)
  end)

  it("never keeps a non-JSON 200, whatever its max-age: the next call asks again", function()
    local id = ids(21)[21]
    local mark = #f:log()
    f:faults { { path = "/v1/tracks/" .. id, action = "html", status = 200,
      headers = { ["Cache-Control"] = "max-age=3600" } } }
    local status, body = server:get("/track?id=" .. id)
    assert.equal(200, status, body)
    assert.equal("decode", cjson.decode(body).err)
    for _ = 1, 4 do -- whichever worker takes it: its own tier and the dict hold no page
      status, body = server:get("/track?id=" .. id)
      assert.equal(200, status, body)
      assert.equal("Austerity", cjson.decode(body).name)
    end
    assert.equal(2, #f:log_for("/v1/tracks/" .. id, mark))
  end)
end)

-- One small dict for the token, the 429 penalty and the answers: answers
-- that no longer fit are not kept, and never evict the penalty.
local CROWDED = [=[
local spotify = require "spotify"
local cjson = require "cjson"
local options = require "spec_options"
local app = {}

local function client(extra, answers)
  local o = {}
  for k, v in pairs(options) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  o.cache = spotify.cache.shdict(ngx.shared.crowded)
  if answers then
    o.responses = spotify.responses { store = answers, ttl = { track = 3600 } }
  end
  return spotify.client(o)
end

local function reply(t)
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode(t))
end

-- A 429 asking more than max_retry_after: failed at once, and kept in the
-- dict for budget "held" (a new client each time: nothing held in a client).
function app.penalty()
  local c = client({ budget_key = "held", max_retry_after = 1, max_retries = 0 })
  local _, err = c:track(ngx.req.get_uri_args().id)
  c:close()
  reply { err = err and err.kind }
end

-- Lookups of IDs from..to by another budget, each answer for the store:
-- the dict `dict`, as a cache made with answers_only when only=1.
function app.fill()
  local a = ngx.req.get_uri_args()
  local store = spotify.cache.shdict(ngx.shared[a.dict], { answers_only = a.only == "1" })
  local c = client({ budget_key = "busy" }, store)
  local failed = 0
  for i = tonumber(a.from), tonumber(a.to) do
    if not c:track(("F%021d"):format(i)) then failed = failed + 1 end
  end
  local s = c:stats()
  c:close()
  reply { failed = failed, shared_hits = s.response_shared_hits }
end

function app.held()
  local c = client({ budget_key = "held", max_retry_after = 1, max_retries = 0 })
  local _, err = c:track(ngx.req.get_uri_args().id)
  c:close()
  reply { err = err and err.kind }
end

return app
]=]

describe("a shared dict holding the token, a 429 penalty and answers", function()
  local f, server
  setup(function()
    f = fake.start()
    server = nginx.start {
      workers = 1,
      http = table.concat({
        nginx.package_paths(),
        "lua_shared_dict crowded 100k;",
        "lua_shared_dict answers 100k;",
        "lua_socket_log_errors off;",
        "init_by_lua_block { require 'spotify' }",
      }, "\n  "),
      server = table.concat({
        "location = /penalty { content_by_lua_block { require('spec_app').penalty() } }",
        "location = /fill { content_by_lua_block { require('spec_app').fill() } }",
        "location = /held { content_by_lua_block { require('spec_app').held() } }",
      }, "\n    "),
      files = { ["spec_app.lua"] = CROWDED, ["spec_options.lua"] = "return " .. ([[{ client_id = %q,
        client_secret = %q, api_base = %q, token_url = %q }]]):format("test-id", "test-secret",
        f.api_base, f.token_url) },
    }
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  local function fill(dict, from, to, only)
    local status, body = server:get(("/fill?dict=%s&from=%d&to=%d&only=%s"):format(dict, from, to, only))
    assert.equal(200, status, body)
    local r = cjson.decode(body)
    assert.equal(0, r.failed)
    return r.shared_hits
  end

  it("keeps the penalty however many answers come", function()
    local ID = "4iV5W9uYEdYUVa79Axb7Rh"
    local mark = #f:log()
    f:faults { { path = "/v1/tracks/", status = 429, headers = { ["Retry-After"] = "600" } } }
    local status, body = server:get("/penalty?id=" .. ID)
    assert.equal(200, status, body)
    assert.equal("rate_limited", cjson.decode(body).err)
    -- ~3 KB answers: 300 of them are ten times the dict
    fill("crowded", 1, 300, "0")
    assert.equal(300, #f:log_for("/v1/tracks/F", mark))
    assert.is_true(fill("crowded", 1, 5, "0") > 0) -- the first answers were kept while there was room
    local before = #f:log_for "/v1/tracks/"
    status, body = server:get("/held?id=" .. ID)
    assert.equal(200, status, body)
    assert.equal("rate_limited", cjson.decode(body).err)
    assert.equal(before, #f:log_for "/v1/tracks/") -- held by the penalty in the dict: nothing asked
  end)

  it("lets a new answer evict the least recently used in a dict of answers only", function()
    local mark = #f:log()
    fill("answers", 1001, 1300, "1")
    assert.equal(10, fill("answers", 1291, 1300, "1")) -- the latest are there
    assert.equal(300, #f:log_for("/v1/tracks/F", mark))
  end)
end)
