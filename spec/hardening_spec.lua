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
