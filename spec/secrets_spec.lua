-- No secret ever leaves the client except in the Authorization header: the
-- client secret (plain and inside the Basic header) and every access token
-- handed out are searched for in every error (fields and printed form), every
-- on_request record, the file cache's file and the stats, across successes
-- and every kind of failure. Backoff waits run on a virtual clock.
require("spec.support.virtual_clock").install()
local spotify = require "spotify"
local fake = require "spec.support.fake"
local core = require "spotify.core"
local testing = core.testing()

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local CLIENT_ID = "secret-spec-id"
local SECRET = "S3cr3t-Value-9f8e7d6c5b4a"

-- Every string reachable from v (keys and values, recursively), plus the
-- printed form of tables with a __tostring.
local function strings_in(v, out, seen)
  out, seen = out or {}, seen or {}
  local t = type(v)
  if t == "string" then
    out[#out + 1] = v
  elseif t == "number" or t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" and not seen[v] then
    seen[v] = true
    local mt = getmetatable(v)
    if mt and mt.__tostring then out[#out + 1] = tostring(v) end
    for k, x in pairs(v) do
      strings_in(k, out, seen)
      strings_in(x, out, seen)
    end
  end
  return out
end

local function read_file(path)
  local fh = io.open(path, "rb")
  if not fh then return "" end
  local s = fh:read "*a"
  fh:close()
  return s
end

describe("secrets", function()
  local f, dir
  local secrets -- every value that must not show up anywhere

  setup(function()
    f = fake.start { tls = true }
    dir = fake.workdir()
  end)
  teardown(function() if f then f:stop() end end)

  before_each(function()
    f:reset()
    f:config { credentials = { [CLIENT_ID] = SECRET } }
    secrets = { SECRET, testing.basic_auth(CLIENT_ID, SECRET):sub(7) }
  end)

  -- Add every token the fake handed out (seen in its log) to the secrets.
  local function learn_tokens()
    for _, e in ipairs(f:log()) do
      local tok = e.authorization and e.authorization:match "^Bearer (.+)$"
      if tok then secrets[#secrets + 1] = tok end
    end
  end

  local function assert_clean(what, value, allowed)
    for _, s in ipairs(strings_in(value)) do
      for _, secret in ipairs(secrets) do
        if secret ~= allowed and s:find(secret, 1, true) then
          error(("%s leaks a secret: %q contains %q"):format(what, s, secret), 2)
        end
      end
    end
  end

  local cache_path
  local function client(extra, records)
    cache_path = dir .. "/secrets-cache-" .. tostring(math.random(1e9)) .. ".json"
    local o = fake.client_opts(f, {
      client_id = CLIENT_ID, client_secret = SECRET, max_retries = 1, timeout = 1,
      cache = spotify.cache.file(cache_path),
      on_request = function(info) records[#records + 1] = info end,
    })
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(o)
  end

  -- Run `call` on a fresh client under `faults`; check everything it left.
  local function check(faults, call, extra)
    local records = {}
    local c = client(extra, records)
    f:faults(faults)
    local results = { call(c) }
    local stats = c:stats()
    c:close()
    learn_tokens()
    assert_clean("a result", results[2])
    assert_clean("an on_request record", records)
    assert_clean("the stats", stats)
    -- The cache holds the token by design, never the secret.
    local file = read_file(cache_path)
    for _, secret in ipairs { SECRET, secrets[2] } do
      assert.is_falsy(file:find(secret, 1, true))
    end
    return results, records
  end

  local function track(c) return c:track(ID) end

  it("a successful run leaves no secret in records, stats or the cache file", function()
    local results, records = check({}, function(c)
      assert(c:track(ID))
      assert(c:tracks { ID, ID })
      assert(c:access_token())
      return c:track(ID)
    end)
    assert.equal(ID, results[1].id)
    assert.is_true(#records >= 4)
    assert.is_true(#secrets >= 3) -- a token was handed out and is searched for
    assert.is_truthy(read_file(cache_path):find(secrets[3], 1, true))
  end)

  local failures = {
    { "wrong secret", {}, { client_secret = "wrong-" .. SECRET } },
    { "token endpoint 500", { { path = "/api/token", status = 500, times = -1 } } },
    { "token endpoint HTML page", { { path = "/api/token", action = "html", status = 502, times = -1 } } },
    { "token endpoint bad JSON", { { path = "/api/token", action = "bad_json", times = -1 } } },
    { "token endpoint timeout", { { path = "/api/token", action = "slow_headers", seconds = 2, times = -1 } } },
    { "token endpoint dropped", { { path = "/api/token", action = "drop", times = -1 } } },
    { "token without a token type we accept",
      { { path = "/api/token", body = '{"access_token":"tok-odd","token_type":"mac","expires_in":60}' } } },
    { "API 401 after renewal", { { path = "/v1/", status = 401, fixture = "error_401_token_expired.json",
      times = -1 } } },
    { "API 404", { { path = "/v1/", status = 404 } } },
    { "API 429 too long", { { path = "/v1/", status = 429, headers = { ["Retry-After"] = "86400" } } } },
    { "API 503", { { path = "/v1/", status = 503, times = -1 } } },
    { "API truncated", { { path = "/v1/", action = "truncate", times = -1 } } },
    { "API bad JSON", { { path = "/v1/", action = "bad_json" } } },
    { "API timeout", { { path = "/v1/", action = "slow_body", seconds = 3, times = -1 } } },
    { "connection refused", {}, { api_base = "http://127.0.0.1:1/v1" } },
  }

  for _, case in ipairs(failures) do
    local name, faults, extra = case[1], case[2], case[3]
    it(name .. ": the error and the records hold no secret", function()
      local results = check(faults, track, extra)
      assert.is_nil(results[1])
      assert.is_true(spotify.is_error(results[2]))
      -- the printed form is what ends up in logs
      assert_clean("tostring(err)", tostring(results[2]))
    end)
  end

  it("a plural call and a started request fail without leaking", function()
    check({ { path = "/v1/tracks", status = 500, times = -1 } }, function(c)
      local v, err = c:tracks { ID, ID }
      assert.is_nil(v)
      assert_clean("a plural error", err)
      local req = c:start("track", ID)
      while not req:done() do c:poll(0.05) end
      return req:result()
    end)
  end)

  it("a fixed access_token stays out of errors", function()
    local records = {}
    local fixed = "fixed-token-" .. SECRET:sub(1, 6) .. "-abc"
    secrets[#secrets + 1] = fixed
    local c = spotify.client {
      access_token = fixed, api_base = f.api_base,
      on_request = function(info) records[#records + 1] = info end,
    }
    local v, err = c:track(ID)
    c:close()
    assert.is_nil(v)
    assert.equal("auth", err.kind)
    assert_clean("the error", err)
    assert_clean("an on_request record", records)
  end)

  it("an upstream's error.reason that quotes the token comes back redacted, like its message", function()
    local fixed = "fixed-token-" .. SECRET:sub(1, 6) .. "-reason"
    secrets[#secrets + 1] = fixed
    local quoted = "Bearer " .. fixed
    f:faults { { path = "/v1/", status = 403, body = ('{"error":{"status":403,"message":"refused %s",'
      .. '"reason":"%s"}}'):format(quoted, quoted) } }
    local c = spotify.client { access_token = fixed, api_base = f.api_base }
    local v, err = c:track(ID)
    c:close()
    assert.is_nil(v)
    assert.equal("forbidden", err.kind)
    assert.equal("Bearer <token>", err.reason)
    assert.equal("refused Bearer <token>", err.message)
    assert_clean("the error", err)
    assert_clean("tostring(err)", tostring(err))
  end)

  it("a cache that fails keeps the token out of the cache_error record", function()
    local failing = {
      get = function() return nil end,
      set = function(_, key, value) error("cannot store " .. key .. " = " .. value) end,
    }
    local results, records = check({}, track, { cache = failing })
    assert.equal(ID, results[1].id)
    local events = 0
    for _, r in ipairs(records) do
      if r.event == "cache_error" then events = events + 1 end
    end
    assert.equal(1, events)
  end)
end)
