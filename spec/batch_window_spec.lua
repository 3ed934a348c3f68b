-- batch_window: single lookups of one kind made within the window go out
-- as one batch GET (started requests; nginx light threads); each caller gets
-- its own item or its own not_found; refused batch endpoints fall back to
-- single lookups. Counts come from the fake's log.
local cjson = require "cjson"
local spotify = require "spotify"
local core = require "spotify.core"
local fake = require "spec.support.fake"
local nginx = require "spec.support.nginx"
local socket = require "socket"

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

  it("decides the fallback as a plural call does: a 404 for the batch and every item remembers nothing", function()
    local c = client { batch_window = 0.05 }
    f:faults { { path = "/v1/tracks", query_contains = "ids=", status = 404 } }
    local results = run_all(c, { c:start("track", "UnknownWWWWWWWWWWWWWWW"),
      c:start("track", "UnknownXXXXXXXXXXXXXXX") })
    for _, r in ipairs(results) do assert.equal("not_found", r[2].kind) end
    assert.matches("UnknownWWWWWWWWWWWWWWW", results[1][2].url)
    local mark = #f:log()
    local out = assert(c:tracks(ids(2)))
    assert.equal(ids(2)[2], out[2].id)
    local log = f:log_for("/v1/tracks", mark)
    assert.equal(1, #log) -- still the batch endpoint: no Development Mode was concluded
    assert.equal("/v1/tracks", log[1].path)
    c:close()
  end)

  it("asks each ID of a refused window once, however the single answers come in", function()
    f:config { no_batch = true }
    -- the three answers leave together: the driver brings them in at once
    f:faults { { path = "/v1/tracks/", barrier = 3, times = -1 } }
    local c = client { batch_window = 0.05 }
    local list = ids(3)
    local results = run_all(c, { c:start("track", list[1]), c:start("track", list[2]), c:start("track", list[3]) })
    for i = 1, 3 do assert.equal(list[i], results[i][1].id) end
    assert.equal(3, #f:log_for "/v1/tracks/")
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

-- The app of the nginx specs: GET /one?id=[&m=album], /plural?ids= on the
-- client named by ?client= (default "plain"); /killed, /abort and /filled
-- end the light thread that opened or filled a window in the three ways
-- nginx can (see each).
local APP = [=[
local spotify = require "spotify"
local cjson = require "cjson"
local options = require "spec_options"
local app, clients = {}, {}
local function client()
  local name = ngx.var.arg_client or "plain"
  clients[name] = clients[name] or spotify.client(options[name])
  return clients[name]
end
local function list(text)
  local out = {}
  for id in text:gmatch "[^,]+" do out[#out + 1] = id end
  return out
end
function app.one()
  local c = client()
  local t, err = c[ngx.var.arg_m or "track"](c, ngx.var.arg_id)
  ngx.say(cjson.encode { id = t and t.id, err = err and err.kind })
end
function app.plural()
  local all, err = client():tracks(list(ngx.var.arg_ids))
  local out = {}
  for i, t in ipairs(all or {}) do out[i] = t == spotify.null and "null" or t.id end
  ngx.say(cjson.encode { ids = out, err = err and err.kind })
end
-- The lookup that opens a window, killed (ngx.thread.kill) while the window
-- is open: ngx.thread.spawn returns once it waits in the window.
function app.killed()
  local c = client()
  local t = ngx.thread.spawn(function() return c:track(ngx.var.arg_id) end)
  ngx.say(cjson.encode { killed = ngx.thread.kill(t) == 1 })
end
-- The lookup that opens a window, in a request whose client goes away
-- (lua_check_client_abort): "joined" tells the spec it waits in the window.
function app.abort()
  local c = client()
  local t = ngx.thread.spawn(function() return c:track(ngx.var.arg_id) end)
  ngx.say("joined")
  ngx.flush(true)
  ngx.thread.wait(t)
  ngx.say("answered")
end
-- One lookup waits in a window that a plural call in another light thread
-- fills; that thread is killed as soon as it has filled it.
function app.filled()
  local c = client()
  local one = ngx.thread.spawn(function() return c:track(ngx.var.arg_id) end)
  local filler = ngx.thread.spawn(function() return c:tracks(list(ngx.var.arg_ids)) end)
  local killed = ngx.thread.kill(filler) == 1
  local _, t, err = ngx.thread.wait(one)
  ngx.say(cjson.encode { killed = killed, id = t and t.id, err = err and err.kind })
end
return app
]=]
-- Clients of the spec's app. A window no light thread is left to send
-- would wait for 50 IDs, then give up after batch_window + 4 x (timeout +
-- connect_timeout) = 28.5 s (`stranded`) and send each lookup alone.
local WINDOW, STRANDED = 0.5, 0.5 + 4 * (5 + 2)
local function options_file(f)
  local base = ("client_id = 'test-id', client_secret = 'test-secret', api_base = %q, token_url = %q")
    :format(f.api_base, f.token_url)
  local out = { "return {", ("  plain = { %s, batch_window = 0.3 },"):format(base) }
  out[#out + 1] = ("  devmode = { %s, batch_window = 0.3 },"):format(base)
  for _, name in ipairs { "killed", "abort", "filled" } do
    out[#out + 1] = ("  %s = { %s, batch_window = %s, timeout = 5, connect_timeout = 2 },")
      :format(name, base, WINDOW)
  end
  out[#out + 1] = "}"
  return table.concat(out, "\n")
end

-- nginx with one worker serving the app in front of fake f; `http`: more
-- directives.
local function start_app(f, http)
  return nginx.start {
    workers = 1,
    http = nginx.package_paths() .. "\n  lua_socket_log_errors off;\n  lua_check_client_abort on;"
      .. "\n  init_by_lua_block { require 'spotify' }\n  " .. (http or ""),
    server = "location = /one { content_by_lua_block { require('spec_app').one() } }\n"
      .. "    location = /plural { content_by_lua_block { require('spec_app').plural() } }\n"
      .. "    location = /killed { content_by_lua_block { require('spec_app').killed() } }\n"
      .. "    location = /abort { content_by_lua_block { require('spec_app').abort() } }\n"
      .. "    location = /filled { content_by_lua_block { require('spec_app').filled() } }",
    files = { ["spec_app.lua"] = APP, ["spec_options.lua"] = options_file(f) },
  }
end

describe("batch_window inside nginx", function()
  local f, server
  setup(function()
    f = fake.start()
    server = start_app(f)
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
  it("sends a refused window's lookups one by one, and remembers it (Development Mode)", function()
    assert.equal(200, (server:get("/one?client=devmode&id=4iV5W9uYEdYUVa79Axb7Rh"))) -- the token
    f:config { no_batch = true }
    finally(function() f:config { no_batch = false } end)
    local mark, list = #f:log(), ids(3, "D")
    local paths = {}
    for i = 1, 3 do paths[i] = "/one?client=devmode&id=" .. list[i] end
    local results = server:parallel(paths, 3)
    for i = 1, 3 do assert.equal(list[i], cjson.decode(results[i].body).id) end
    assert.equal(3, #f:log_for("/v1/tracks/", mark))
    local batches = #f:log_for("/v1/tracks", mark) - 3
    assert.is_true(batches >= 1 and batches <= 3, batches .. " batch requests")
    mark = #f:log()
    local status, body = server:get("/plural?client=devmode&ids=" .. list[1] .. "," .. list[2])
    assert.equal(200, status)
    assert.same({ list[1], list[2] }, cjson.decode(body).ids)
    assert.equal(2, #f:log_for("/v1/tracks", mark)) -- singly from the start
    assert.equal(2, #f:log_for("/v1/tracks/", mark))
  end)

  -- A window whose light thread is gone. Its lookups (`list` after the
  -- first, the gone thread's) are asked as other requests; each is answered
  -- from a batch GET, none alone, and the gone thread's ID went out in one
  -- too: its window was sent although no thread of its own was left to.
  local function window_answered(name, mark, list)
    local paths = {}
    for i = 2, #list do paths[#paths + 1] = ("/one?client=%s&id=%s"):format(name, list[i]) end
    local results, elapsed = server:parallel(paths, #paths)
    for i = 2, #list do assert.equal(list[i], cjson.decode(results[i - 1].body).id) end
    local asked = {}
    for _, e in ipairs(f:log_for("/v1/tracks", mark)) do
      assert.equal("/v1/tracks", e.path) -- no single lookup
      for id in e.query:match("ids=([^&]*)"):gmatch "[^,%%]+" do asked[id] = true end
    end
    assert.is_true(asked[list[1]], "the window of the thread that is gone was never sent")
    -- Due batch_window after it opened: well before a stranded window gives up.
    assert.is_true(elapsed < WINDOW + 3, ("answered after %.2f s (stranded: %.1f s)"):format(elapsed, STRANDED))
    return elapsed
  end

  it("sends a window whose opener was killed (ngx.thread.kill) once it is due", function()
    assert.equal(200, (server:get("/one?client=killed&id=4iV5W9uYEdYUVa79Axb7Rh"))) -- the token
    local mark, list = #f:log(), ids(6, "K")
    local status, body = server:get("/killed?client=killed&id=" .. list[1])
    assert.equal(200, status)
    assert.is_true(cjson.decode(body).killed)
    window_answered("killed", mark, list)
  end)

  it("sends a window whose opener's client went away (lua_check_client_abort) once it is due", function()
    assert.equal(200, (server:get("/one?client=abort&id=4iV5W9uYEdYUVa79Axb7Rh"))) -- the token
    local mark, list = #f:log(), ids(6, "A")
    local s = socket.tcp()
    s:settimeout(10)
    assert(s:connect("127.0.0.1", server.port))
    assert(s:send("GET /abort?client=abort&id=" .. list[1] .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
    repeat
      local line = assert(s:receive "*l")
    until line == "joined"
    s:close() -- nginx ends the request and every light thread of it
    window_answered("abort", mark, list)
  end)

  it("answers a full window whose filler was killed while it would send it", function()
    assert.equal(200, (server:get("/one?client=filled&id=4iV5W9uYEdYUVa79Axb7Rh"))) -- the token
    local mark, list = #f:log(), ids(50, "F")
    local started = socket.gettime()
    local status, body = server:get(("/filled?client=filled&id=%s&ids=%s"):format(list[1],
      table.concat(list, ",", 2)))
    local elapsed = socket.gettime() - started
    assert.equal(200, status)
    local reply = cjson.decode(body)
    assert.is_true(reply.killed)
    assert.equal(list[1], reply.id)
    local log = f:log_for("/v1/tracks", mark)
    assert.equal(1, #log) -- the full window, sent once; no single lookup
    assert.equal("/v1/tracks", log[1].path)
    assert.is_true(elapsed < WINDOW + 3, ("answered after %.2f s (stranded: %.1f s)"):format(elapsed, STRANDED))
  end)
end)

describe("batch_window inside nginx with no timer to spare", function()
  local f, server
  setup(function()
    f = fake.start()
    -- one pending timer in all: a window opened while another's timer is
    -- pending gets none (ngx.timer.at refuses it)
    server = start_app(f, "lua_max_pending_timers 1;")
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("sends a window nginx gave no timer from one of its callers once it is due", function()
    assert.equal(200, (server:get("/one?id=4iV5W9uYEdYUVa79Axb7Rh"))) -- the token
    local mark, tracks, albums, paths = #f:log(), ids(3, "T"), ids(3, "L"), {}
    for i = 1, 3 do
      paths[#paths + 1] = "/one?id=" .. tracks[i]
      paths[#paths + 1] = "/one?m=album&id=" .. albums[i]
    end
    local results = server:parallel(paths, #paths)
    for i = 1, 3 do
      assert.equal(tracks[i], cjson.decode(results[2 * i - 1].body).id)
      assert.equal(albums[i], cjson.decode(results[2 * i].body).id)
    end
    assert.equal(0, #f:log_for("/v1/tracks/", mark)) -- none alone
    assert.equal(0, #f:log_for("/v1/albums/", mark))
    assert.equal(1, #f:log_for("/v1/tracks", mark))
    assert.equal(1, #f:log_for("/v1/albums", mark))
  end)
end)
