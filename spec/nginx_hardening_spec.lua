-- The nginx driver against a hostile server: every read bounded (header
-- lines, all headers, chunk lines, bodies with and without a length), the
-- timeout counting the whole request, and a request target that would
-- split the request refused before anything is sent.
local cjson = require "cjson"
local fake = require "spec.support.fake"
local nginx = require "spec.support.nginx"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

local APP = [=[
local spotify = require "spotify"
local cjson = require "cjson"
local options = require "spec_options"
local clients = {}
return function()
  local a = ngx.req.get_uri_args()
  local c = clients[a.client]
  if not c then
    c = spotify.client(options[a.client])
    clients[a.client] = c
  end
  local started = ngx.now()
  local value, err = c:get(a.path)
  ngx.update_time()
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode { ok = value ~= nil, elapsed = ngx.now() - started,
    err = err and { kind = err.kind, message = err.message } })
end
]=]

local function lua_literal(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local out = {}
  for k, x in pairs(v) do out[#out + 1] = ("[%s] = %s"):format(lua_literal(k), lua_literal(x)) end
  return "{ " .. table.concat(out, ", ") .. " }"
end

local function escape(s)
  return (s:gsub("[^%w%-_%.~/]", function(ch) return ("%%%02X"):format(ch:byte()) end))
end

describe("the nginx driver against a hostile server", function()
  local f, server
  setup(function()
    f = fake.start {}
    local clients = {
      plain = fake.client_opts(f, { timeout = 5, max_retries = 0, max_body = 1024 * 1024 }),
      short = fake.client_opts(f, { timeout = 2, max_retries = 0 }),
    }
    server = nginx.start {
      workers = 1,
      http = nginx.package_paths() .. "\n  lua_socket_log_errors off;",
      server = "location = /get { content_by_lua_block { require('spec_app')() } }",
      files = { ["spec_app.lua"] = APP, ["spec_options.lua"] = "return " .. lua_literal(clients) },
    }
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)
  before_each(function() f:faults {} end)

  local function get(client, path)
    local status, body = server:get(("/get?client=%s&path=%s"):format(client, escape(path)))
    assert.equal(200, status, body)
    return cjson.decode(body)
  end

  local function hostile(fault)
    fault.path, fault.action, fault.times = "/v1/tracks/", "raw", 1
    f:faults { fault }
  end

  it("answers a well-formed raw answer (the fault itself works)", function()
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ", fill = ("a"):rep(1024), count = 7,
      tail = "\r\n\r\n{}" }
    local r = get("plain", "/tracks/" .. ID)
    assert.is_true(r.ok, r.err and r.err.message)
  end)

  it("refuses a header line over 8 KiB", function()
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ", fill = ("a"):rep(1024), count = 9,
      tail = "\r\n\r\n{}" }
    local r = get("plain", "/tracks/" .. ID)
    assert.is_false(r.ok)
    assert.equal("decode", r.err.kind)
    assert.matches("header", r.err.message)
  end)

  it("refuses header lines over 64 KiB in all", function()
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", fill = "X-H: " .. ("a"):rep(1000) .. "\r\n",
      count = 90, tail = "\r\n{}" }
    local r = get("plain", "/tracks/" .. ID)
    assert.is_false(r.ok)
    assert.equal("decode", r.err.kind)
    assert.matches("header", r.err.message)
  end)

  it("refuses a status line over 8 KiB", function()
    hostile { head = "HTTP/1.1 200 ", fill = ("a"):rep(1024), count = 16, tail = "\r\n\r\n" }
    local r = get("plain", "/tracks/" .. ID)
    assert.is_false(r.ok)
    assert.equal("decode", r.err.kind)
  end)

  it("stops reading a body without a length at max_body, not at the end of the connection", function()
    -- 2 MiB, then the connection stays open: reading to its end would wait
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", fill = (" "):rep(65536),
      count = 32, hold = 8 }
    local r = get("plain", "/tracks/" .. ID)
    assert.is_false(r.ok)
    assert.equal("decode", r.err.kind)
    assert.matches("max_body", r.err.message)
  end)

  it("stops reading a body with a Content-Length over max_body before reading it", function()
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Length: 2097152\r\n\r\n", fill = (" "):rep(65536), count = 32 }
    local r = get("plain", "/tracks/" .. ID)
    assert.equal("decode", r.err.kind)
    assert.matches("max_body", r.err.message)
  end)

  it("stops reading chunks at max_body", function()
    local chunk = ("%x\r\n%s\r\n"):format(65536, (" "):rep(65536))
    hostile { head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", fill = chunk, count = 32, hold = 8 }
    local r = get("plain", "/tracks/" .. ID)
    assert.equal("decode", r.err.kind)
    assert.matches("max_body", r.err.message)
  end)

  it("refuses a chunk-size line over 8 KiB", function()
    hostile { head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", fill = ("0"):rep(1024), count = 16,
      tail = "2\r\n{}\r\n0\r\n\r\n" }
    local r = get("plain", "/tracks/" .. ID)
    assert.is_false(r.ok)
    assert.equal("decode", r.err.kind)
  end)

  it("counts the timeout over the whole request: a body dribbled byte by byte times out", function()
    -- 40 bytes at 4 a second: every gap is short, the whole takes 10 s
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n", fill = " ", count = 38, interval = 0.25,
      tail = "{}" }
    local r = get("short", "/tracks/" .. ID)
    assert.is_false(r.ok)
    assert.equal("timeout", r.err.kind)
  end)

  it("counts the timeout over the whole request: headers dribbled line by line time out", function()
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", fill = "X-A: b\r\n", count = 40, interval = 0.25,
      tail = "\r\n{}" }
    local r = get("short", "/tracks/" .. ID)
    assert.is_false(r.ok)
    assert.equal("timeout", r.err.kind)
  end)

  it("refuses a request target that would split the request, with nothing sent", function()
    local sent = #f:log()
    for _, path in ipairs { "/tracks/x?market=US\r\nX-Injected: 1", "/tracks/x HTTP/1.1\r\nHost: evil", "/%2e%2e/x" } do
      local r = get("plain", path)
      assert.is_false(r.ok)
      assert.equal("invalid_argument", r.err.kind)
    end
    assert.equal(sent, #f:log())
  end)
end)
