-- spotify.client{gateway = URL, gateway_key = key}: a client of a gateway
-- holds no credentials, asks for no token and sends no Authorization; its
-- key goes as X-Api-Key, in every driver (blocking libcurl, libcurl multi
-- through start/poll, nginx cosockets). The fake Spotify stands in for the
-- gateway here, so its log shows exactly what a gateway would receive (it
-- answers a request without a token 401, which the client reports as
-- `auth`, as it does a key a gateway refuses).
local cjson = require "cjson"
local spotify = require "spotify"
local fake = require "spec.support.fake"
local nginx = require "spec.support.nginx"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

-- A header the request did not carry (the fake's log holds JSON null).
local function absent(v)
  return v == nil or v == cjson.null
end

describe("a gateway's client", function()
  local f

  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)

  it("needs no credentials, and refuses the options a gateway holds", function()
    local c = spotify.client { gateway = "http://127.0.0.1:9/v1/" }
    c:close()
    for _, k in ipairs { "client_id", "client_secret", "access_token", "api_base", "token_url" } do
      local ok, err = pcall(spotify.client, { gateway = "http://127.0.0.1:9/v1", [k] = "http://x/y" })
      assert.is_false(ok)
      assert.matches("option '" .. k .. "' has no use with 'gateway'", err)
    end
    local ok, err = pcall(spotify.client, { client_id = "a", client_secret = "b", gateway_key = "k" })
    assert.is_false(ok)
    assert.matches("option 'gateway_key' needs option 'gateway'", err)
    ok, err = pcall(spotify.client, { gateway = "http://127.0.0.1:9/v1", gateway_key = "sec ret\r\n" })
    assert.is_false(ok)
    assert.matches("option 'gateway_key' must be", err)
    assert.not_matches("sec ret", err, 1, true) -- a key's value is never shown
    ok, err = pcall(spotify.client, { gateway = "ftp://x" })
    assert.is_false(ok)
    assert.matches("option 'gateway' must be an http:// or https:// URL", err)
    local g = spotify.client { gateway = "http://127.0.0.1:9/v1" }
    local token, terr = g:access_token()
    assert.is_nil(token)
    assert.equal("invalid_argument", terr.kind)
    g:close()
  end)

  local function check_log(mark, n, key)
    local entries = f:log_for("", mark)
    assert.equal(n, #entries)
    for _, e in ipairs(entries) do
      assert.equal("/v1/tracks/" .. ID, e.path)
      assert.is_true(absent(e.authorization))
      assert.equal(key, e.api_key)
    end
  end

  it("sends no token request and no Authorization, and its key as X-Api-Key (blocking)", function()
    local mark = #f:log()
    local c = spotify.client { gateway = f.api_base, gateway_key = "key-1", max_retries = 0 }
    local value, err = c:track(ID)
    assert.is_nil(value)
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
    c:close()
    local bare = spotify.client { gateway = f.api_base }
    assert.equal("auth", select(2, bare:track(ID)).kind)
    bare:close()
    local entries = f:log_for("", mark)
    assert.equal(2, #entries)
    assert.equal("key-1", entries[1].api_key)
    assert.is_true(absent(entries[2].api_key))
    for _, e in ipairs(entries) do
      assert.equal("/v1/tracks/" .. ID, e.path)
      assert.is_true(absent(e.authorization))
    end
  end)

  it("does the same in started requests (libcurl multi)", function()
    local mark = #f:log()
    local c = spotify.client { gateway = f.api_base, gateway_key = "key-2", max_retries = 0 }
    local reqs = { c:start("track", ID), c:start("track", ID) }
    while not (reqs[1]:done() and reqs[2]:done()) do c:poll(0.05) end
    for _, r in ipairs(reqs) do
      local value, err = r:result()
      assert.is_nil(value)
      assert.equal("auth", err.kind)
    end
    c:close()
    check_log(mark, 1, "key-2") -- the second rode on the first (coalesced)
  end)

  it("does the same inside nginx (cosockets)", function()
    local server = nginx.start {
      http = nginx.package_paths(),
      server = ([[
        location = /t {
          content_by_lua_block {
            local spotify = require "spotify"
            local c = spotify.client { gateway = %q, gateway_key = "key-3", max_retries = 0 }
            local value, err = c:track(%q)
            ngx.say(require("cjson").encode { value = value ~= nil, kind = err and err.kind })
          }
        }]]):format(f.api_base, ID),
    }
    local mark = #f:log()
    local status, body = server:get "/t"
    server:stop()
    assert.equal(200, status, body)
    assert.same({ value = false, kind = "auth" }, cjson.decode(body))
    check_log(mark, 1, "key-3")
  end)
end)
