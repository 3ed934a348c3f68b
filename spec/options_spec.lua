local spotify = require "spotify"

describe("spotify.client options", function()
  local creds = { client_id = "id", client_secret = "secret" }
  local function with(extra)
    local o = {}
    for k, v in pairs(creds) do o[k] = v end
    for k, v in pairs(extra) do o[k] = v end
    return o
  end

  it("makes a userdata client without network I/O", function()
    local c = spotify.client(with { api_base = "http://127.0.0.1:9/v1", token_url = "http://127.0.0.1:9/t" })
    assert.equal("userdata", type(c))
    assert.equal(0, c:stats().requests)
    assert.equal(0, c:stats().token_fetches)
    c:close()
  end)

  it("exports VERSION and null", function()
    assert.matches("^%d+%.%d+%.%d+$", spotify.VERSION)
    assert.equal(require("cjson").null, spotify.null)
  end)

  it("takes rate_limit = {requests, window} and counts its waits in stats", function()
    local c = spotify.client(with { rate_limit = { requests = 100, window = 30 } })
    assert.equal(0, c:stats().rate_limited_waits)
    assert.equal(0, c:stats().rate_limited_wait_s)
    c:close()
  end)

  it("rejects unknown options, naming them", function()
    assert.has_error(function() spotify.client(with { timout = 3 }) end,
      "spotify.client: unknown option 'timout'")
  end)

  local bad = {
    { "timeout", "10" }, { "timeout", -1 }, { "timeout", 0 }, { "connect_timeout", false },
    { "max_retries", 1.5 }, { "max_retries", -1 }, { "max_retry_after", "x" },
    { "refresh_buffer", -5 }, { "api_base", "ftp://x" }, { "api_base", 3 },
    { "token_url", "not a url" }, { "ca_file", 1 }, { "proxy", {} }, { "user_agent", 2 },
    { "on_request", "print" }, { "batch", "yes" }, { "concurrency", 0 }, { "max_body", 1.5 },
    { "deadline", 0 }, { "cache", 5 }, { "cache", {} }, { "market", "usa" }, { "client_id", 7 },
    { "rate_limit", 10 }, { "rate_limit", { requests = 0, window = 1 } },
    { "rate_limit", { requests = 1.5, window = 1 } }, { "rate_limit", { requests = 5 } },
    { "rate_limit", { requests = 5, window = 0 } }, { "rate_limit", { requests = 5, window = 1, burst = 2 } },
    -- upper bounds: options.lua owns them, the core never clamps
    { "max_retries", 5000 }, { "timeout", 86401 }, { "connect_timeout", math.huge },
    { "max_retry_after", 1e10 }, { "refresh_buffer", 1e10 }, { "deadline", math.huge },
    { "max_body", 2 ^ 40 }, { "rate_limit", { requests = 100001, window = 1 } },
    { "rate_limit", { requests = 5, window = 86401 } },
    { "rate_limit", { requests = 5, window = 1, fallback = 100001 } },
  }
  for _, case in ipairs(bad) do
    it("rejects " .. case[1] .. " = " .. tostring(case[2]), function()
      local ok, err = pcall(spotify.client, with { [case[1]] = case[2] })
      assert.is_false(ok)
      assert.matches("option '" .. case[1] .. "' must be", err, 1, true)
    end)
  end

  it("accepts each upper bound itself", function()
    local c = spotify.client(with { max_retries = 1000, timeout = 86400, connect_timeout = 86400,
      max_retry_after = 1e9, refresh_buffer = 1e9, deadline = 1e9, max_body = 64 * 1024 ^ 3,
      rate_limit = { requests = 100000, window = 86400, fallback = 100000 } })
    c:close()
  end)

  it("shows the rejected value in the message", function()
    local shown = {
      { "timeout", -1, "option 'timeout' must be a number above 0, got -1" },
      { "timeout", "10", "option 'timeout' must be a number, got \"10\"" },
      { "batch", "yes", "option 'batch' must be a boolean, got \"yes\"" },
      { "max_retries", 1.5, "option 'max_retries' must be an integer, got 1.5" },
      { "max_retries", 5000, "option 'max_retries' must be a number of at most 1000, got 5000" },
      { "connect_timeout", false, "option 'connect_timeout' must be a number, got false" },
      { "proxy", {}, "option 'proxy' must be a string, got table" },
    }
    for _, case in ipairs(shown) do
      local ok, err = pcall(spotify.client, with { [case[1]] = case[2] })
      assert.is_false(ok)
      assert.matches(case[3], err, 1, true)
    end
  end)

  it("never shows the value of a secret option", function()
    local ok, err = pcall(spotify.client, with { client_secret = 424242 })
    assert.is_false(ok)
    assert.matches("option 'client_secret' must be a string, got number", err, 1, true)
    assert.not_matches("424242", err, 1, true)
    ok, err = pcall(spotify.client, { access_token = 777111 })
    assert.is_false(ok)
    assert.not_matches("777111", err, 1, true)
  end)

  it("rejects a non-table", function()
    assert.has_error(function() spotify.client("x") end)
  end)

  it("needs credentials, naming the missing one", function()
    local ok, err = pcall(spotify.client, { client_id = "id" })
    assert.is_false(ok)
    if not os.getenv "SPOTIFY_CLIENT_SECRET" then
      assert.matches("client_secret", err, 1, true)
    end
  end)

  it("accepts an access_token without credentials", function()
    local c = spotify.client { access_token = "abc" }
    assert.equal("abc", (c:access_token()))
    c:close()
  end)

  it("accepts any object with get and set as cache, and uses it", function()
    local calls = {}
    local cache = {
      get = function(_, key) calls[#calls + 1] = "get " .. key end,
      set = function(_, key) calls[#calls + 1] = "set " .. key end,
    }
    local c = spotify.client(with { cache = cache, token_url = "http://127.0.0.1:9/api/token",
      max_retries = 0 })
    local tok, err = c:access_token()
    assert.is_nil(tok)
    assert.equal("network", err.kind)
    -- looked up before fetching; nothing to store after a failure
    assert.same({ "get " .. require("spec.support.keys").token("id", "secret", "http://127.0.0.1:9/api/token") },
      calls)
    c:close()
  end)
end)

describe("client:close", function()
  it("is idempotent and later calls answer kind closed", function()
    local c = spotify.client { client_id = "id", client_secret = "s", api_base = "http://127.0.0.1:9/v1" }
    c:close()
    c:close()
    local v, err = c:track("4iV5W9uYEdYUVa79Axb7Rh")
    assert.is_nil(v)
    assert.equal("closed", err.kind)
    v, err = c:get("/markets")
    assert.is_nil(v)
    assert.equal("closed", err.kind)
    v, err = c:access_token()
    assert.is_nil(v)
    assert.equal("closed", err.kind)
    assert.equal("spotify.client (closed)", tostring(c))
  end)

  if _VERSION == "Lua 5.4" then
    it("runs from __close", function()
      local chunk = load [[
        local spotify = require "spotify"
        local keep
        do
          local c <close> = spotify.client { client_id = "id", client_secret = "s" }
          keep = c
        end
        return keep
      ]]
      local c = chunk()
      local _, err = c:track("4iV5W9uYEdYUVa79Axb7Rh")
      assert.equal("closed", err.kind)
    end)
  end

  it("is collected once dropped (its __gc runs)", function()
    local seen = setmetatable({}, { __mode = "k" })
    for _ = 1, 50 do seen[spotify.client { client_id = "id", client_secret = "s" }] = true end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(seen))
  end)
end)

-- SPOTIFY_API_BASE and SPOTIFY_TOKEN_URL are read by a fresh process (Lua
-- cannot set its own environment), so a client made without api_base and
-- token_url talks to the fake the variables point at.
describe("spotify.client endpoint defaults from the environment", function()
  local fake = require "spec.support.fake"
  local files = require "spec.support.files"
  local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)

  local function run(env, code)
    local dir = fake.workdir()
    local script = dir .. "/env_default.lua"
    local out = assert(io.open(script, "w"))
    out:write('package.path = "lua/?.lua;lua/?/init.lua;" .. package.path\n',
      'package.cpath = os.getenv "SPOTIFY_BUILD" .. "/?.so;" .. package.cpath\n', code)
    out:close()
    local cmd = ("env SPOTIFY_CLIENT_ID=test-id SPOTIFY_CLIENT_SECRET=test-secret %s %s %s 2>&1")
      :format(env, LUA, script)
    return files.read_command(cmd)
  end

  it("uses them as api_base and token_url", function()
    f:reset()
    local out = run(("SPOTIFY_API_BASE=%s SPOTIFY_TOKEN_URL=%s"):format(f.api_base, f.token_url), [[
      local c = require("spotify").client {}
      local t = assert(c:track "4iV5W9uYEdYUVa79Axb7Rh")
      io.write(t.id)
    ]])
    assert.equal("4iV5W9uYEdYUVa79Axb7Rh", out)
    assert.equal(1, #f:log_for "/v1/tracks/")
    assert.equal(1, #f:log_for "/api/token")
  end)

  it("lets a given option win over them", function()
    f:reset()
    local out = run("SPOTIFY_API_BASE=http://127.0.0.1:9/v1 SPOTIFY_TOKEN_URL=http://127.0.0.1:9/t", ([[
      local c = require("spotify").client { api_base = %q, token_url = %q }
      io.write(assert(c:track "4iV5W9uYEdYUVa79Axb7Rh").id)
    ]]):format(f.api_base, f.token_url))
    assert.equal("4iV5W9uYEdYUVa79Axb7Rh", out)
  end)

  it("names the variable when its value is not a URL", function()
    local out = run("SPOTIFY_API_BASE=ftp://x", [[
      local ok, err = pcall(require("spotify").client, {})
      io.write(tostring(ok), " ", err)
    ]])
    assert.matches("false .*SPOTIFY_API_BASE %(the default of option 'api_base'%) must be "
      .. "an http:// or https:// URL, got \"ftp://x\"", out)
  end)
end)
