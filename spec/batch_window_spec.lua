-- batch_window: single lookups of one kind made within the window go out
-- as one batch GET (started requests; nginx light threads); each caller gets
-- its own item or its own not_found; refused batch endpoints fall back to
-- single lookups. Counts come from the fake's log.
local cjson = require "cjson"
local spotify = require "spotify"
local core = require "spotify.core"
local fake = require "spec.support.fake"
local nginx = require "spec.support.nginx"

local function ids(n, prefix) return fake.ids(n, prefix or "B") end

local function run_all(c, reqs)
  local give_up = core.now() + 10
  while c:poll(0.01) > 0 do assert(core.now() < give_up, "started requests did not finish") end
  local out = {}
  for i, r in ipairs(reqs) do out[i] = { r:result() } end
  return out
end

describe("batch_window with started requests", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  local function client(extra)
    local o = { max_retries = 0, batch_window = 5 } -- a full window goes out at once
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(fake.client_opts(f, o))
  end

  it("sends 50 started lookups as one batch request and no single one", function()
    local c = client()
    local list, reqs = ids(50), {}
    for i = 1, 50 do reqs[i] = c:start("track", list[i]) end
    local results = run_all(c, reqs)
    for i = 1, 50 do
      assert.is_nil(results[i][2])
      assert.equal(list[i], results[i][1].id)
    end
    assert.equal(0, #f:log_for "/v1/tracks/")
    local log = f:log_for "/v1/tracks"
    assert.equal(1, #log)
    assert.matches("ids=", log[1].query)
    assert.equal(50, c:stats().batched)
    c:close()
  end)

  it("sends a window that is not full once its time is up", function()
    local c = client { batch_window = 0.05 }
    local list, reqs = ids(7), {}
    for i = 1, 7 do reqs[i] = c:start("track", list[i]) end
    local results = run_all(c, reqs)
    for i = 1, 7 do assert.equal(list[i], results[i][1].id) end
    assert.equal(1, #f:log_for "/v1/tracks")
    c:close()
  end)

  it("splits at the API's limit and keeps kinds and options apart", function()
    local c = client { batch_window = 0.05 }
    local reqs, list = {}, ids(45)
    for i = 1, 45 do reqs[#reqs + 1] = c:start("album", list[i]) end     -- 20 per batch: 3
    reqs[#reqs + 1] = c:start("artist", list[1])
    reqs[#reqs + 1] = c:start("track", list[1], { market = "DE" })
    reqs[#reqs + 1] = c:start("track", list[2])
    local results = run_all(c, reqs)
    for i = 1, 45 do assert.equal(list[i], results[i][1].id) end
    assert.equal(3, #f:log_for "/v1/albums")
    assert.equal(1, #f:log_for "/v1/artists")
    assert.equal(2, #f:log_for "/v1/tracks")
    c:close()
  end)

  it("gives an unknown ID's caller its own not_found and the others their items", function()
    local c = client { batch_window = 0.05 }
    local reqs = { c:start("track", "4iV5W9uYEdYUVa79Axb7Rh"), c:start("track", "UnknownBBBBBBBBBBBBBBB"),
      c:start("track", "4iV5W9uYEdYUVa79Axb7Rh") }
    local results = run_all(c, reqs)
    assert.equal("4iV5W9uYEdYUVa79Axb7Rh", results[1][1].id)
    assert.is_nil(results[2][1])
    assert.equal("not_found", results[2][2].kind)
    assert.matches("UnknownBBBBBBBBBBBBBBB", results[2][2].url)
    results[1][1].name = "changed" -- the same ID twice: two tables
    assert.are_not.equal("changed", results[3][1].name)
    assert.equal(1, #f:log_for "/v1/tracks")
    c:close()
  end)

  it("shares a failed batch's error with every caller", function()
    local c = client { batch_window = 0.05 }
    f:faults { { path = "/v1/tracks", status = 500 } }
    local results = run_all(c, { c:start("track", ids(1)[1]), c:start("track", ids(2)[2]) })
    for _, r in ipairs(results) do assert.equal("server", r[2].kind) end
    assert.equal(1, #f:log_for "/v1/tracks")
    c:close()
  end)

  it("goes out singly where the batch endpoint is refused (Development Mode), and stays so", function()
    f:config { no_batch = true }
    local c = client { batch_window = 0.05 }
    local list = ids(3)
    local results = run_all(c, { c:start("track", list[1]), c:start("track", list[2]), c:start("track", list[3]) })
    for i = 1, 3 do assert.equal(list[i], results[i][1].id) end
    assert.equal(3, #f:log_for "/v1/tracks/") -- singly, after one refused batch
    assert.equal(4, #f:log_for "/v1/tracks")
    results = run_all(c, { c:start("track", list[1]), c:start("track", list[2]) })
    assert.equal(list[2], results[2][1].id)
    assert.equal(6, #f:log_for "/v1/tracks")
    assert.equal(0, c:stats().batched)
    c:close()
  end)

  it("leaves plain calls and batch = false alone", function()
    local c = client()
    assert(c:track(ids(1)[1])) -- a blocking call has nothing to wait with
    local c2 = client { batch = false, batch_window = 0.05 }
    run_all(c2, { c2:start("track", ids(1)[1]), c2:start("track", ids(2)[2]) })
    assert.equal(3, #f:log_for "/v1/tracks/")
    c:close()
    c2:close()
  end)

  it("answers a lookup the response cache holds without a window or a request", function()
    local c = client { batch_window = 0.05, responses = spotify.responses { ttl = 3600 } }
    local list = ids(3)
    run_all(c, { c:start("track", list[1]), c:start("track", list[2]) })
    assert.equal(1, #f:log_for "/v1/tracks")
    assert(c:track(list[1])) -- a plain call: the batch kept each item under its single key
    assert.equal(1, #f:log_for "/v1/tracks")
    local results = run_all(c, { c:start("track", list[1]), c:start("track", list[3]) })
    assert.equal(list[1], results[1][1].id)
    assert.equal(list[3], results[2][1].id)
    assert.equal(2, #f:log_for "/v1/tracks")
    assert.is_true(c:stats().response_hits >= 1)
    c:close()
  end)

  it("puts a plural call's IDs in the window with the single lookups of others", function()
    local c = client { batch_window = 0.05 }
    local list = ids(60)
    local plural = {}
    for i = 1, 55 do plural[i] = list[i] end
    plural[56] = "UnknownPPPPPPPPPPPPPPP"
    local reqs = { c:start("tracks", plural), c:start("track", list[58]), c:start("track", list[2]) }
    local results = run_all(c, reqs)
    local all = results[1][1]
    assert.equal(56, #all)
    for i = 1, 55 do assert.equal(list[i], all[i].id) end
    assert.equal(spotify.null, all[56])
    assert.equal(list[58], results[2][1].id)
    assert.equal(list[2], results[3][1].id)
    assert.equal(2, #f:log_for "/v1/tracks") -- 50 IDs, then the other 8
    assert.equal(0, #f:log_for "/v1/tracks/")
    assert.equal(58, c:stats().batched)
    c:close()
  end)

  it("checks the option", function()
    assert.has_error(function() client { batch_window = "soon" } end)
    assert.has_error(function() client { batch_window = -1 } end)
  end)
end)

describe("batch_window inside nginx", function()
  local f, server
  local APP = [=[
local spotify = require "spotify"
local cjson = require "cjson"
local options = require "spec_options"
local app, c = {}, nil
function app.one()
  c = c or spotify.client(options)
  local t, err = c:track(ngx.var.arg_id)
  ngx.say(cjson.encode { id = t and t.id, err = err and err.kind })
end
function app.plural()
  c = c or spotify.client(options)
  local wanted = {}
  for id in ngx.var.arg_ids:gmatch "[^,]+" do wanted[#wanted + 1] = id end
  local list, err = c:tracks(wanted)
  local out = {}
  for i, t in ipairs(list or {}) do out[i] = t == spotify.null and "null" or t.id end
  ngx.say(cjson.encode { ids = out, err = err and err.kind })
end
return app
]=]
  setup(function()
    f = fake.start()
    server = nginx.start {
      workers = 1,
      http = nginx.package_paths() .. "\n  lua_socket_log_errors off;\n  init_by_lua_block { require 'spotify' }",
      server = "location = /one { content_by_lua_block { require('spec_app').one() } }\n"
        .. "    location = /plural { content_by_lua_block { require('spec_app').plural() } }",
      files = { ["spec_app.lua"] = APP, ["spec_options.lua"] = ("return { client_id = 'test-id', "
        .. "client_secret = 'test-secret', api_base = %q, token_url = %q, batch_window = 0.3 }")
        :format(f.api_base, f.token_url) },
    }
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("sends 50 concurrent lookups of one worker as at most 3 requests", function()
    assert.equal(200, (server:get("/one?id=4iV5W9uYEdYUVa79Axb7Rh"))) -- the token
    f:reset()
    local list, paths = ids(50, "N"), {}
    list[50] = "UnknownNNNNNNNNNNNNNNN"
    for i = 1, 50 do paths[i] = "/one?id=" .. list[i] end
    local results = server:parallel(paths, 50)
    for i = 1, 49 do
      local reply = cjson.decode(results[i].body)
      assert.equal(list[i], reply.id)
    end
    assert.equal("not_found", cjson.decode(results[50].body).err)
    local asked = #f:log_for "/v1/tracks"
    assert.is_true(asked <= 3, asked .. " requests")
    assert.equal(0, #f:log_for "/v1/tracks/")
  end)

  it("puts a plural call's IDs in the window with the single lookups of other requests", function()
    local before = #f:log_for "/v1/tracks"
    local list = ids(5, "P")
    local paths = { "/plural?ids=" .. table.concat({ list[1], list[2], "UnknownPPPPPPPPPPPPPPP", list[3] }, ","),
      "/one?id=" .. list[4], "/one?id=" .. list[5] }
    local results = server:parallel(paths, 3)
    local plural = cjson.decode(results[1].body)
    assert.same({ list[1], list[2], "null", list[3] }, plural.ids)
    assert.equal(list[4], cjson.decode(results[2].body).id)
    assert.equal(list[5], cjson.decode(results[3].body).id)
    assert.is_true(#f:log_for "/v1/tracks" - before <= 2)
  end)
end)
