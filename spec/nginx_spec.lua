-- The client inside real nginx (Debian nginx + libnginx-mod-http-lua, LuaJIT)
-- in front of the fake Spotify: cosockets, keep-alive, TLS, one token for
-- all workers, and the same answers as the libcurl client.
local cjson = require "cjson"
local spotify = require "spotify"
local fake = require "spec.support.fake"
local nginx = require "spec.support.nginx"
local socket = require "socket"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local UNKNOWN = "UnknownAAAAAAAAAAAAAAA"
local unpack = table.unpack or unpack -- luacheck: ignore 113 143

-- The application nginx serves for these specs: GET /call runs any client
-- method and answers {value, err, pid, stats} as JSON.
local APP = [=[
local spotify = require "spotify"
local cjson = require "cjson"
local options = require "spec_options"

local app, clients = {}, {}

local function client(name)
  local c = clients[name]
  if c then return c end
  local o = {}
  for k, v in pairs(assert(options[name], "no client options named " .. tostring(name))) do o[k] = v end
  if o.cache == "shdict" then o.cache = spotify.cache.shdict(ngx.shared.spotify_tokens) end
  c = spotify.client(o)
  clients[name] = c
  return c
end

local function fields(err)
  if type(err) ~= "table" then return nil end -- access_token's second result is a number
  return { kind = err.kind, status = err.status, message = err.message, retry_after = err.retry_after }
end

-- GET /call?client=NAME&m=METHOD&args=JSON-array[&all=1]
function app.call()
  local a = ngx.req.get_uri_args()
  local c = client(a.client or "plain")
  local value, err = c[a.m](c, unpack(cjson.decode(a.args or "[]")))
  if value ~= nil and a.all then value, err = c:all(value) end
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode { value = value, err = fields(err), pid = ngx.worker.pid(), stats = c:stats() })
end

-- GET /shdict: the shared-dict cache's answers, step by step.
function app.shdict()
  local dict = ngx.shared.spotify_tokens
  local one, two = spotify.cache.shdict(dict), spotify.cache.shdict(dict)
  local r = {}
  one:set("value", "v1", 0.2)
  r.get = two:get("value")
  r.missing = two:get("absent") == nil
  r.first_lock = one:lock("lock", 0.2)
  r.second_lock = two:lock("lock", 0.2)
  two:unlock("lock") -- not its lock: nothing happens
  r.still_held = two:lock("lock", 0.2)
  one:unlock("lock")
  r.after_unlock = two:lock("lock", 0.2)
  ngx.sleep(0.3)
  r.expired_value = two:get("value") == nil
  r.after_ttl = one:lock("lock", 5)
  two:unlock("lock") -- its lock expired and one holds it now: must stay
  r.kept = two:lock("lock", 5) == false
  one:unlock("lock")
  r.rejects_a_table = not pcall(spotify.cache.shdict, {})
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode(r))
end

-- Started from init_worker_by_lua: fetch the "warm" client's token in a timer.
function app.warm()
  if options.warm then
    ngx.timer.at(0, function() app.warmed = { client("warm"):access_token() } end)
  end
end

-- The error a call raises in a phase without cosockets.
function app.in_phase()
  local ok, err = pcall(function() return client("plain"):track("]=] .. ID .. [=[") end)
  if ok then return "no error" end
  return tostring(err)
end

return app
]=]

local SERVER = [[
    location = /call { content_by_lua_block { require("spec_app").call() } }
    location = /shdict { content_by_lua_block { require("spec_app").shdict() } }
    location = /pid { return 200 "$pid"; }
    location = /phase {
      set_by_lua_block $set_error { return require("spec_app").in_phase() }
      header_filter_by_lua_block { ngx.header["X-Filter-Error"] = require("spec_app").in_phase() }
      content_by_lua_block { ngx.say(ngx.var.set_error) }
    }
]]

local function lua_literal(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local out = {}
  for k, x in pairs(v) do out[#out + 1] = ("[%s] = %s"):format(lua_literal(k), lua_literal(x)) end
  return "{ " .. table.concat(out, ", ") .. " }"
end

-- Start nginx serving APP with the named client option sets.
local function start(f, opts)
  local http = table.concat({
    nginx.package_paths(),
    "lua_shared_dict spotify_tokens 1m;",
    "lua_socket_log_errors off;",
    -- in the prefix: workers (user nobody) read it too
    opts.trusted and "lua_ssl_trusted_certificate ${PREFIX}/ca.pem;" or "",
    "init_by_lua_block { require 'spotify' }",
    "init_worker_by_lua_block { require('spec_app').warm() }",
  }, "\n  ")
  return nginx.start {
    workers = opts.workers or 1,
    http = http,
    server = SERVER,
    files = { ["spec_app.lua"] = APP, ["spec_options.lua"] = "return " .. lua_literal(opts.clients),
      ["ca.pem"] = f.ca_file and assert(io.open(f.ca_file)):read "*a" or nil },
  }
end

local function query_arg(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function call_path(client_name, method, args, all)
  return ("/call?client=%s&m=%s&args=%s%s"):format(client_name, method, query_arg(cjson.encode(args or {})),
    all and "&all=1" or "")
end

-- One call through nginx: value, err (plain tables), and the reply. Any
-- other status than 200 fails with what nginx logged about it.
local function remote(server, client_name, method, args, all)
  local mark = server:log_mark()
  local status, body = server:get(call_path(client_name, method, args, all))
  assert.equal(200, status, tostring(body) .. "\n" .. table.concat(server:complaints(mark), "\n"))
  local reply = cjson.decode(body)
  return reply.value, reply.err, reply
end

-- A value as JSON carries it, so both sides compare alike.
local function plain(v)
  if v == nil then return nil end
  return cjson.decode(cjson.encode(v))
end

local function error_fields(err)
  if err == nil then return nil end
  return plain { kind = err.kind, status = err.status, message = err.message, retry_after = err.retry_after }
end

local function ids(n, unknown_at)
  local out = {}
  for i = 1, n do out[i] = ("%022d"):format(i) end
  if unknown_at then out[unknown_at] = UNKNOWN end
  return out
end

-- No [warn] or worse line since `mark` (server:log_mark()): each spec
-- checks only the lines its own requests made.
local function assert_clean_log(server, mark)
  assert.same({}, server:complaints(mark))
end

describe("nginx", function()
  it("is installed with its lua module, lua-resty-core and a LuaJIT build of the core", function()
    nginx.check() -- raises, naming what is missing: nothing here is skipped
  end)

  it("reports a missing nginx as a failure, not a skip", function()
    local binary = nginx.BINARY
    nginx.BINARY = "/nonexistent/nginx"
    local ok, err = pcall(nginx.check)
    nginx.BINARY = binary
    assert.is_false(ok)
    assert.matches("missing /nonexistent/nginx", err)
  end)
end)

describe("nginx with one worker", function()
  local f, server, curl_client
  local function curl_opts(extra) return fake.client_opts(f, extra) end

  setup(function()
    f = fake.start { tls = true }
    server = start(f, {
      workers = 1, trusted = true,
      clients = {
        plain = fake.client_opts(f),
        unbatched = fake.client_opts(f, { batch = false }),
        tls = fake.client_opts(f, { api_base = f.tls_api_base, token_url = f.tls_token_url }),
        short = fake.client_opts(f, { timeout = 0.5, max_retries = 0 }),
        small_body = fake.client_opts(f, { max_body = 1024 * 1024, max_retries = 0 }),
        retrying = fake.client_opts(f, { max_retries = 2 }),
        -- holds a 3600 s penalty after its test, so no other test uses it
        penalized = fake.client_opts(f),
        warm = fake.client_opts(f),
        proxied = fake.client_opts(f, { api_base = "http://api.spotify.invalid/v1",
          token_url = "http://accounts.spotify.invalid/api/token", proxy = f.base }),
      },
    })
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)
  local log_mark
  before_each(function()
    f:faults {}
    curl_client = spotify.client(curl_opts())
    log_mark = server:log_mark()
  end)
  after_each(function()
    curl_client:close()
    assert_clean_log(server, log_mark) -- every spec here leaves no [warn] or [error] line
  end)

  it("answers every call as the libcurl client does", function()
    f:config { totals = { album_tracks = 45 } }
    local calls = {
      { "track", { ID } },
      { "track", { ID, { market = "SE" } } },
      { "tracks", { ids(60, 7) } },
      { "album", { ID } },
      { "artists", { ids(3) } },
      { "artist_top_tracks", { ID, { market = "US" } } },
      { "search", { "roadhouse blues", { type = { "track", "artist" }, limit = 5 } } },
      { "markets", {} },
      { "get", { "/recommendations/available-genre-seeds" } },
      { "track", { UNKNOWN } },
      { "track", { "not an id" } },
      { "get", { "/nowhere" } },
    }
    for _, call in ipairs(calls) do
      local name, args = call[1], call[2]
      local want, want_err = curl_client[name](curl_client, unpack(args))
      local got, got_err = remote(server, "plain", name, args)
      assert.same(plain(want), got, name)
      assert.same(error_fields(want_err), got_err, name)
    end
  end)

  it("follows every page as the libcurl client does (client:all over ngx.thread)", function()
    f:config { totals = { album_tracks = 45 } }
    local first = assert(curl_client:album_tracks(ID, { limit = 10 }))
    local want = assert(curl_client:all(first))
    assert.equal(45, #want)
    local got = remote(server, "plain", "album_tracks", { ID, { limit = 10 } }, true)
    assert.same(plain(want), got)
  end)

  it("falls back to single requests run on light threads, in input order", function()
    local list = ids(12, 5)
    local want = assert(curl_client:tracks(list))
    local got, err = remote(server, "unbatched", "tracks", { list })
    assert.is_nil(err)
    assert.same(plain(want), got)
    assert.equal(cjson.null, got[5])
  end)

  it("reads chunked bodies", function()
    f:faults { { path = "/v1/tracks/", action = "chunked", times = -1 } }
    local want = assert(curl_client:track(ID))
    local got, err = remote(server, "plain", "track", { ID })
    assert.is_nil(err)
    assert.same(plain(want), got)
  end)

  describe("gzip", function()
    local function gzip_off() f:config { gzip = false } end

    it("asks for it and gets the same values over fewer bytes", function()
      finally(gzip_off)
      local args = { "roadhouse blues", { type = { "track", "artist" }, limit = 10 } }
      local want = assert(curl_client:search(unpack(args)))
      local mark = #f:log()
      local plain_search = remote(server, "plain", "search", args)
      f:config { gzip = true }
      local got, err = remote(server, "plain", "search", args)
      assert.is_nil(err)
      assert.same(plain(want), got)
      assert.same(plain(want), plain_search)
      local log = f:log_for("/v1/search", mark)
      assert.equal(2, #log)
      assert.equal("gzip", log[2].accept_encoding) -- as libcurl asks
      assert.is_not.equal("gzip", log[1].content_encoding)
      assert.equal("gzip", log[2].content_encoding)
      assert.is_true(log[2].sent * 4 < log[1].sent, log[2].sent .. " vs " .. log[1].sent)
      assert_clean_log(server, log_mark)
    end)

    it("reads chunked gzip answers", function()
      finally(gzip_off)
      f:config { gzip = true }
      f:faults { { path = "/v1/tracks/", action = "chunked", times = -1 } }
      local want = assert(curl_client:track(ID))
      local got, err = remote(server, "plain", "track", { ID })
      assert.is_nil(err)
      assert.same(plain(want), got)
    end)

    it("refuses a gzip bomb as too big, bounded by max_body", function()
      f:faults { { path = "/v1/tracks/", action = "gzip_bomb", size = 256 * 1024 * 1024, times = 1 } }
      local mark = #f:log()
      local got, err = remote(server, "small_body", "track", { ID })
      assert.is_nil(got)
      assert.equal("decode", err.kind)
      assert.matches("larger than max_body", err.message)
      local log = f:log_for("/v1/tracks/", mark)
      assert.equal(1, #log)
      assert.is_true(log[1].sent < 1024 * 1024) -- small on the wire, huge inflated
    end)

    it("says a truncated gzip stream is truncated", function()
      f:faults { { path = "/v1/tracks/", action = "gzip_truncated", times = 1 } }
      local got, err = remote(server, "short", "track", { ID })
      assert.is_nil(got)
      assert.equal("network", err.kind)
      assert.matches("gzip stream truncated", err.message)
    end)

    it("refuses an unknown content encoding", function()
      f:faults { { path = "/v1/tracks/", action = "encoding", encoding = "zstd-x", times = 1 } }
      local got, err = remote(server, "short", "track", { ID })
      assert.is_nil(got)
      assert.equal("network", err.kind)
      assert.matches("unknown content encoding zstd%-x", err.message)
    end)
  end)

  it("retries a 429 after its Retry-After, as decided by the core", function()
    f:faults { { path = "/v1/tracks/", status = 429, headers = { ["Retry-After"] = "1" }, times = 1 } }
    remote(server, "retrying", "access_token", {})
    local before = remote(server, "retrying", "stats", {})
    local mark = #f:log()
    local got, err, reply = remote(server, "retrying", "track", { ID })
    assert.is_nil(err)
    assert.equal(ID, got.id)
    assert.equal(1, reply.stats.retries - before.retries)
    local log = f:log_for("", mark)
    assert.equal(2, #log)
    assert.is_true(log[2].time - log[1].time >= 0.9)
  end)

  it("returns rate_limited with retry_after when Retry-After exceeds max_retry_after", function()
    f:faults { { path = "/v1/tracks/", status = 429, headers = { ["Retry-After"] = "3600" }, times = 1 } }
    local want, want_err = curl_client:track(ID)
    assert.is_nil(want)
    f:faults { { path = "/v1/tracks/", status = 429, headers = { ["Retry-After"] = "3600" }, times = 1 } }
    local got, err = remote(server, "penalized", "track", { ID })
    assert.is_nil(got)
    assert.same(error_fields(want_err), err)
    assert.equal("rate_limited", err.kind)
    assert.equal(3600, err.retry_after)
    -- and the penalty holds the client's next call, which fails at once
    local mark = #f:log()
    local _, held = remote(server, "penalized", "track", { ID })
    assert.equal("rate_limited", held.kind)
    assert.is_true(held.retry_after > 3500)
    assert.equal(0, #f:log_for("", mark))
  end)

  it("gives up on a slow answer after the timeout with kind timeout", function()
    remote(server, "short", "access_token", {})
    f:faults { { path = "/v1/tracks/", action = "slow_headers", seconds = 2, times = 1 } }
    local got, err = remote(server, "short", "track", { ID })
    assert.is_nil(got)
    assert.equal("timeout", err.kind)
  end)

  it("keeps connections alive across requests (setkeepalive pool)", function()
    remote(server, "plain", "access_token", {})
    local before = remote(server, "plain", "stats", {})
    local mark = #f:log()
    for _ = 1, 5 do assert.equal(ID, (remote(server, "plain", "track", { ID })).id) end
    local after = remote(server, "plain", "stats", {})
    local log = f:log_for("", mark)
    assert.equal(5, #log)
    for i = 2, 5 do assert.equal(log[1].conn, log[i].conn) end
    assert.equal(5, after.requests - before.requests)
    assert.is_true(after.connections_opened - before.connections_opened <= 1)
    assert.is_true(after.bytes_received > before.bytes_received)
  end)

  it("repeats a request once on a new connection when the pooled one was dropped", function()
    local _, _, before = remote(server, "plain", "track", { ID }) -- leaves a connection in the pool
    f:faults { { path = "/v1/tracks/", action = "drop", times = 1 } }
    local mark = #f:log()
    local got, err, reply = remote(server, "plain", "track", { ID })
    assert.is_nil(err)
    assert.equal(ID, got.id)
    assert.equal(before.stats.retries, reply.stats.retries) -- not an attempt of the engine
    local log = f:log_for("", mark)
    assert.equal(2, #log)
    assert.not_equal(log[1].conn, log[2].conn)
  end)

  it("speaks TLS with a verified certificate (lua_ssl_trusted_certificate)", function()
    local got, err = remote(server, "tls", "track", { ID })
    assert.is_nil(err)
    assert.equal(ID, got.id)
    local log = f:log_for "/v1/tracks/"
    assert.is_true(log[#log].tls)
  end)

  it("goes through an http proxy with absolute-form requests", function()
    local mark = #f:log()
    local got, err = remote(server, "proxied", "track", { ID })
    assert.is_nil(err)
    assert.equal(ID, got.id)
    local log = f:log_for("", mark)
    assert.equal("http://accounts.spotify.invalid/api/token", log[1].target)
    assert.equal("http://api.spotify.invalid/v1/tracks/" .. ID, log[2].target)
    assert.equal("api.spotify.invalid", log[2].host)
  end)

  it("runs 50 concurrent requests in one worker without blocking it", function()
    remote(server, "plain", "access_token", {})
    local delay = 1
    f:faults { { path = "/v1/tracks/", delay = delay, times = -1 } }
    local mark = #f:log()
    local paths = {}
    for i = 1, 50 do paths[i] = call_path("plain", "track", { ("%022d"):format(i) }) end
    local results = server:parallel(paths, 50)
    f:faults {}
    for i = 1, 50 do
      assert.equal(200, results[i].status)
      assert.equal(("%022d"):format(i), cjson.decode(results[i].body).value.id)
    end
    -- all 50 reached the fake before its first answer (each waits `delay`)
    -- went out: the worker never waited for one request to start the next
    local log = f:log_for("", mark)
    assert.equal(50, #log)
    local first, last = math.huge, -math.huge
    for _, e in ipairs(log) do first, last = math.min(first, e.time), math.max(last, e.time) end
    assert.is_true(last - first < delay, ("the requests reached the fake over %.2f s"):format(last - first))
  end)

  it("works in a timer started by init_worker_by_lua (warming the token)", function()
    local stats = remote(server, "warm", "stats", {})
    assert.equal(1, stats.token_fetches)
    assert.equal(1, stats.requests)
  end)

  it("keeps values and add()-locks with TTLs in the shared dict", function()
    local status, body = server:get "/shdict"
    assert.equal(200, status, body)
    assert.same({
      get = "v1", missing = true, first_lock = true, second_lock = false, still_held = false,
      after_unlock = true, expired_value = true, after_ttl = true, kept = true, rejects_a_table = true,
    }, cjson.decode(body))
  end)

  it("raises a clear error in phases without cosockets (set, header filter)", function()
    local status, body = server:get "/phase"
    assert.equal(200, status)
    assert.matches("set phase has no cosockets", body)
    local headers = select(3, server:get "/phase")
    assert.matches("header_filter phase has no cosockets", headers["x-filter-error"])
  end)
end)

-- One answer on a kept-alive luasocket connection: status, body.
local function read_reply(s)
  local status = tonumber(assert(s:receive "*l"):match "^HTTP/1%.%d (%d+)")
  local length, chunked
  while true do
    local line = assert(s:receive "*l")
    if line == "" then break end
    local name, value = line:match "^([^:]+):%s*(.-)%s*$"
    name = name and name:lower()
    if name == "content-length" then length = tonumber(value) end
    if name == "transfer-encoding" and value:lower():find "chunked" then chunked = true end
  end
  if not chunked then return status, assert(s:receive(length)) end
  local parts = {}
  while true do
    local size = tonumber(assert(s:receive "*l"):match "^%x+", 16)
    if size == 0 then
      assert(s:receive "*l")
      return status, table.concat(parts)
    end
    parts[#parts + 1] = assert(s:receive(size))
    assert(s:receive "*l")
  end
end

-- One kept-alive connection to each of two workers. reuseport spreads new
-- connections over the workers by a hash; a connection stays with its worker.
local function one_connection_per_worker(server)
  local by_pid, conns = {}, {}
  for _ = 1, 200 do
    local s = socket.tcp()
    s:settimeout(20)
    assert(s:connect("127.0.0.1", server.port))
    assert(s:send "GET /pid HTTP/1.1\r\nHost: localhost\r\n\r\n")
    local _, pid = read_reply(s)
    if by_pid[pid] then
      s:close()
    else
      by_pid[pid], conns[#conns + 1] = true, s
      if #conns == 2 then return conns end
    end
  end
  error("200 connections all went to one worker")
end

describe("nginx with two workers and a shared dict", function()
  local f, server
  setup(function()
    f = fake.start()
    server = start(f, { workers = 2, clients = { shared = fake.client_opts(f, { cache = "shdict" }) } })
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("fetches one token for 200 cold concurrent requests across both workers", function()
    local mark = server:log_mark()
    f:faults { { path = "/api/token", delay = 0.3, times = -1 } }
    -- both workers get a cold request for certain: one on a connection
    -- held to each, sent before any answer is read
    local conns = one_connection_per_worker(server)
    for _, s in ipairs(conns) do
      assert(s:send(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n"):format(call_path("shared", "track", { ID }))))
    end
    local paths = {}
    -- 198 distinct tracks: identical GETs in flight would share one request
    local function id(i) return ("K%021d"):format(i) end
    for i = 1, 198 do paths[i] = call_path("shared", "track", { id(i) }) end
    local results = server:parallel(paths, 198)
    local pids = {}
    for _, s in ipairs(conns) do
      local status, body = read_reply(s)
      s:close()
      results[#results + 1] = { status = status, body = body }
    end
    for i = 1, 200 do
      assert.equal(200, results[i].status, results[i].body)
      local reply = cjson.decode(results[i].body)
      assert.is_nil(reply.err)
      assert.equal(i > 198 and ID or id(i), reply.value.id)
      if i > 198 then pids[#pids + 1] = reply.pid end
    end
    assert.are_not.equal(pids[1], pids[2]) -- both workers served a cold request
    assert.equal(1, #f:log_for "/api/token")
    assert.equal(200, #f:log_for "/v1/tracks/")
    assert_clean_log(server, mark)
  end)
end)

describe("nginx without a trusted certificate", function()
  local f, server
  setup(function()
    f = fake.start { tls = true }
    server = start(f, {
      workers = 1, trusted = false,
      clients = {
        tls = fake.client_opts(f, { api_base = f.tls_api_base, token_url = f.tls_token_url }),
        tls_ca_file = fake.client_opts(f, { api_base = f.tls_api_base, token_url = f.tls_token_url,
          ca_file = f.ca_file }),
      },
    })
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  local mark
  before_each(function() mark = server:log_mark() end)
  after_each(function() assert_clean_log(server, mark) end)

  for _, name in ipairs { "tls", "tls_ca_file" } do
    it("fails certificate verification with a network error, not retried (" .. name .. ")", function()
      local got, err, reply = remote(server, name, "track", { ID })
      assert.is_nil(got)
      assert.equal("network", err.kind)
      assert.matches("TLS handshake with localhost failed: %d+: ", err.message)
      assert.equal(1, reply.stats.requests)
      assert.equal(0, #f:log())
    end)
  end
end)

describe("examples/nginx", function()
  local f, server
  setup(function()
    f = fake.start { tls = true }
    local conf = assert(io.open(nginx.root .. "/examples/nginx/nginx.conf")):read "*a"
    local api = assert(io.open(nginx.root .. "/examples/nginx/spotify_api.lua")):read "*a"
    -- Only where things are: the module's copy in the prefix instead of the
    -- luarocks tree, the fake's certificate, a free port.
    conf = conf:gsub("/usr/local/share/lua/5%.1", "${PREFIX}/lua")
      :gsub("/usr/local/lib/lua/5%.1", "${PREFIX}/lib")
      :gsub("lua_ssl_trusted_certificate [^;]+;", "lua_ssl_trusted_certificate ${PREFIX}/ca.pem;")
      :gsub("listen 8080;", "listen 127.0.0.1:${PORT};")
    server = nginx.start {
      conf = conf, files = { ["spotify_api.lua"] = api, ["ca.pem"] = assert(io.open(f.ca_file)):read "*a" },
      env = { SPOTIFY_CLIENT_ID = "test-id", SPOTIFY_CLIENT_SECRET = "test-secret",
        SPOTIFY_API_BASE = f.tls_api_base, SPOTIFY_TOKEN_URL = f.tls_token_url },
    }
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("serves the JSON API of its README over TLS", function()
    local mark = server:log_mark()
    f:config { totals = { album_tracks = 30 } }
    local status, body = server:get("/track/" .. ID)
    assert.equal(200, status, body)
    local track = cjson.decode(body)
    status, body = server:get("/tracks?ids=" .. ID .. "," .. UNKNOWN)
    assert.equal(200, status, body)
    local tracks = cjson.decode(body)
    status, body = server:get("/album/" .. ID .. "/tracks")
    assert.equal(200, status, body)
    assert.equal(30, #cjson.decode(body))
    status, body = server:get("/search?q=blues&limit=3")
    assert.equal(200, status, body)
    assert.equal(3, #cjson.decode(body).items)
    status, body = server:get("/track/" .. UNKNOWN)
    assert.equal(404, status)
    assert.equal("not_found", cjson.decode(body).error.kind)
    assert.equal(1, #f:log_for "/api/token")
    assert_clean_log(server, mark)
    local c = spotify.client(fake.client_opts(f))
    assert.same(plain(assert(c:track(ID))), track)
    assert.same(plain(assert(c:tracks { ID, UNKNOWN })), tracks)
    c:close()
  end)
end)
