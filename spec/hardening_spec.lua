-- What a hostile server, page or option must not get through: characters
-- that would split a request line or a header, dot segments, control
-- characters in options, and the token in any form in an event.
local spotify = require "spotify"
local fake = require "spec.support.fake"

local function url_encoded(s)
  return (s:gsub("[^%w%-%._~]", function(ch) return ("%%%02X"):format(ch:byte()) end))
end

describe("request targets", function()
  local f, c
  setup(function() f = fake.start {} end)
  teardown(function() f:stop() end)
  before_each(function()
    f:reset()
    c = spotify.client(fake.client_opts(f))
    assert(c:access_token())
  end)
  after_each(function() c:close() end)

  local function refused(value, err, sent_before)
    assert.is_nil(value)
    assert.equal("invalid_argument", err and err.kind)
    assert.equal(sent_before, #f:log(), "a refused request reached the server")
  end

  local SPLITTING = {
    "/tracks/x\r\nX-Injected: 1", "/tracks/x?market=US\r\nX-Injected: 1",
    "/tracks/x?market=US HTTP/1.1\r\nHost: evil", "/tracks/x\0", "/tracks/x y", "/tracks/x?q=a b",
    "/tracks/x?q=\n", "/tracks/x\t",
  }

  for _, path in ipairs(SPLITTING) do
    it("refuses client:get(" .. ("%q"):format(path):gsub("\n", "n") .. ") with nothing sent", function()
      local sent = #f:log()
      local value, err = c:get(path)
      refused(value, err, sent)
      assert.not_matches("[\r\n]", err.message)
      -- also as a full URL below api_base
      value, err = c:get(f.api_base .. path)
      refused(value, err, sent)
    end)
  end

  for _, path in ipairs(SPLITTING) do
    it("refuses a next link holding " .. ("%q"):format(path):gsub("\n", "n"), function()
      local sent = #f:log()
      local page = { items = {}, next = f.api_base .. path }
      local value, err = c:next(page)
      refused(value, err, sent)
      value, err = c:all(page)
      refused(value, err, sent)
    end)
  end

  local DOTS = {
    "/%2e%2e/%2e%2e/x", "/%2E%2E/x", "/tracks/./x", "/tracks/%2e/x", "/tracks/.%2e/x", "/tracks/.",
    "/tracks/..", "/../../x",
  }
  for _, path in ipairs(DOTS) do
    it("refuses the dot segment in " .. path .. " (client:get and a next link)", function()
      local sent = #f:log()
      local value, err = c:get(path)
      refused(value, err, sent)
      value, err = c:next { items = {}, next = f.api_base .. path }
      refused(value, err, sent)
    end)
  end

  it("still sends ordinary paths, queries and next links", function()
    assert(c:get "/tracks/4iV5W9uYEdYUVa79Axb7Rh")
    assert(c:get("/tracks/4iV5W9uYEdYUVa79Axb7Rh?market=US", { fields = "a,b" }))
  end)
end)

describe("string options", function()
  local STRING_OPTIONS = { "client_id", "client_secret", "access_token", "ca_file", "proxy", "user_agent" }
  for _, name in ipairs(STRING_OPTIONS) do
    for _, bad in ipairs { "a\r\nX-Injected: 1", "a\0b", "a\nb", "a\127" } do
      it("refuses control characters in " .. name .. ", naming the option and not the value", function()
        local o = { client_id = "id", client_secret = "secret" }
        o[name] = bad
        local ok, err = pcall(spotify.client, o)
        assert.is_false(ok)
        assert.matches("option '" .. name .. "'", err, 1, true)
        assert.matches("control characters", err, 1, true)
        assert.is_nil(err:find(bad, 1, true))
      end)
    end
  end

  for _, name in ipairs { "api_base", "token_url" } do
    it("refuses control characters in " .. name, function()
      local ok, err = pcall(spotify.client, { client_id = "id", client_secret = "s", [name] = "http://h/a\0b" })
      assert.is_false(ok)
      assert.matches("option '" .. name .. "'", err, 1, true)
    end)
  end

  it("keeps a user_agent with spaces", function()
    assert(spotify.client { client_id = "id", client_secret = "s", user_agent = "my app/1.0 (linux)" })
  end)
end)

describe("redaction", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() f:stop() end)

  -- A cache whose failures quote the value it was given, as redis and
  -- friends do, in the form `quote` makes of it.
  local function quoting_cache(quote)
    return { get = function() return nil end, set = function(_, _, value) error("cannot store " .. quote(value)) end }
  end

  local FORMS = {
    json = function(v) return v end, -- the entry is JSON: the token inside it is escaped
    ["url-encoded"] = url_encoded,
    ["url-encoded, lower case"] = function(v) return url_encoded(v):lower() end,
  }
  for name, quote in pairs(FORMS) do
    it("keeps a token holding \" and \\ out of a cache_error event (" .. name .. ")", function()
      f:reset()
      f:config { token_prefix = [[t"o\k/e]] }
      local events = {}
      local c = spotify.client(fake.client_opts(f, {
        cache = quoting_cache(quote), on_request = function(e) events[#events + 1] = e end,
      }))
      local token = assert(c:access_token())
      assert.truthy(token:find('"', 1, true) and token:find("\\", 1, true))
      local seen
      for _, e in ipairs(events) do
        if e.event == "cache_error" then
          seen = e.message
          for _, form in ipairs { token, token:gsub("[\"\\]", "\\%0"), url_encoded(token), url_encoded(token):lower(),
            (token:gsub("[\"\\/]", "\\%0")) } do
            assert.is_nil(e.message:find(form, 1, true), "token form in the event: " .. e.message)
          end
        end
      end
      assert.matches("<token>", seen, 1, true)
      c:close()
      f:config { token_prefix = "tok" }
    end)
  end
end)

describe("redaction in errors", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() f:stop() end)

  for name, form in pairs { raw = function(t) return t end, ["url-encoded"] = url_encoded } do
    it("keeps the token out of an error whose server message quotes it (" .. name .. ")", function()
      f:reset()
      f:config { token_prefix = [[t"o\k/e]] }
      local c = spotify.client(fake.client_opts(f, { max_retries = 0 }))
      local token = assert(c:access_token())
      local cjson = require "cjson"
      f:faults { { path = "/v1/tracks/", status = 400,
        body = cjson.encode { error = { status = 400, message = "bad token " .. form(token) } } } }
      local _, err = c:track "4iV5W9uYEdYUVa79Axb7Rh"
      assert.equal("bad_request", err.kind)
      assert.matches("<token>", err.message, 1, true)
      for _, text in ipairs { err.message, tostring(err) } do
        assert.is_nil(text:find(token, 1, true), text)
        assert.is_nil(text:find(url_encoded(token), 1, true), text)
      end
      c:close()
      f:config { token_prefix = "tok" }
    end)
  end
end)

describe("transport messages and settings", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() f:stop() end)
  before_each(function() f:reset() end)

  local function hostile(fault)
    fault.path, fault.action, fault.times = "/v1/tracks/", "raw", 1
    f:faults { fault }
  end

  local function client(extra)
    local o = { max_retries = 0 }
    for k, v in pairs(extra or {}) do o[k] = v end
    local c = spotify.client(fake.client_opts(f, o))
    assert(c:access_token())
    return c
  end

  it("calls a header over 100 KB too large, not out of memory", function()
    local c = client()
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ", fill = ("a"):rep(1024), count = 200,
      tail = "\r\n\r\n{}" }
    local v, err = c:track "4iV5W9uYEdYUVa79Axb7Rh"
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.matches("headers too many or too large", err.message, 1, true)
    c:close()
  end)

  it("refuses a header line over 8 KiB and headers over 64 KiB, as the nginx driver does", function()
    local c = client()
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ", fill = ("a"):rep(1024), count = 9,
      tail = "\r\n\r\n{}" }
    local _, err = c:track "4iV5W9uYEdYUVa79Axb7Rh"
    assert.equal("decode", err.kind)
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", fill = "X-H: " .. ("a"):rep(1000) .. "\r\n",
      count = 90, tail = "\r\n{}" }
    _, err = c:track "4iV5W9uYEdYUVa79Axb7Rh"
    assert.equal("decode", err.kind)
    c:close()
  end)

  it("calls a close in the middle of the headers a network failure, not a decode error", function()
    local c = client()
    hostile { head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" }
    local v, err = c:track "4iV5W9uYEdYUVa79Axb7Rh"
    assert.is_nil(v)
    assert.equal("network", err.kind)
    assert.matches("closed before the end of the response headers", err.message, 1, true)
    c:close()
  end)

  -- A script run by a child process with `env` (a shell prefix); its output.
  local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")
  local function child(prefix, body)
    local path = fake.workdir() .. "/hardening_child.lua"
    local out = assert(io.open(path, "w"))
    out:write(("package.path = %q; package.cpath = %q\n"):format(package.path, package.cpath))
    out:write(("local spotify = require 'spotify'\nlocal api_base, token_url = %q, %q\n")
      :format(f.api_base, f.token_url))
    out:write(body)
    out:close()
    local p = assert(io.popen(("%s %s %s 2>&1"):format(prefix, LUA, path)))
    local text = p:read "*a"
    p:close()
    return text
  end

  it("says a connect failed for want of file descriptors", function()
    local out = child("ulimit -n 64;", [[
      local c = spotify.client { client_id = "test-id", client_secret = "test-secret", api_base = api_base,
        token_url = token_url, max_retries = 0 }
      local held = {}
      while true do
        local fh = io.open("/dev/null")
        if not fh then break end
        held[#held + 1] = fh
      end
      local _, err = c:access_token()
      print(err and err.message)
    ]])
    assert.matches("file descriptors", out, 1, true)
  end)

  it("takes no proxy from the environment, as the nginx driver does (only the proxy option)", function()
    local out = child("env http_proxy=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9"
      .. " all_proxy=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 no_proxy= NO_PROXY=", [[
      local c = spotify.client { client_id = "test-id", client_secret = "test-secret", api_base = api_base,
        token_url = token_url, max_retries = 0 }
      local v, err = c:track "4iV5W9uYEdYUVa79Axb7Rh"
      print(v and v.id or tostring(err))
    ]])
    assert.matches("4iV5W9uYEdYUVa79Axb7Rh", out, 1, true)
  end)

  describe("an http:// token_url to another machine", function()
    local INSECURE = {
      token_url = "http://accounts.spotify.invalid/api/token", api_base = "http://api.spotify.invalid/v1",
    }

    it("is said once through on_request", function()
      local events = {}
      local c = spotify.client(fake.client_opts(f, { token_url = INSECURE.token_url, api_base = INSECURE.api_base,
        proxy = f.base, on_request = function(e) if e.event then events[#events + 1] = e end end }))
      assert(c:track "4iV5W9uYEdYUVa79Axb7Rh")
      assert(c:track "4iV5W9uYEdYUVa79Axb7Rh")
      assert.equal(1, #events)
      assert.equal("insecure_token_url", events[1].event)
      assert.matches("travels in clear", events[1].message, 1, true)
      c:close()
    end)

    it("is not said for loopback or https", function()
      for _, url in ipairs { f.token_url, "http://localhost:1/t", "http://[::1]:1/t", "https://accounts.example/t" } do
        local events = {}
        local c = spotify.client(fake.client_opts(f, { token_url = url,
          on_request = function(e) if e.event then events[#events + 1] = e end end }))
        assert.equal(0, #events, url)
        c:close()
      end
    end)

    it("is a warning of the command line", function()
      local p = assert(io.popen(("env SPOTIFY_CLIENT_ID=test-id SPOTIFY_CLIENT_SECRET=test-secret "
        .. "SPOTIFY_TOKEN_URL=%s SPOTIFY_API_BASE=%s SPOTIFY_PROXY=%s SPOTIFY_TOKEN_CACHE= SPOTIFY_ACCESS_TOKEN= "
        .. "%s bin/spotify track 4iV5W9uYEdYUVa79Axb7Rh 2>&1 >/dev/null"):format(INSECURE.token_url,
        INSECURE.api_base, f.base, LUA)))
      local err = p:read "*a"
      p:close()
      local _, count = err:gsub("travels in clear", "")
      assert.equal(1, count, err)
    end)
  end)
end)
