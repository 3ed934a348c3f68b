-- The libcurl transport: proxy, user agent, environment credentials.
local spotify = require "spotify"
local fake = require "spec.support.fake"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

local function lua_binary()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  return arg and arg[i] or "lua"
end

describe("transport", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  it("goes through a proxy", function()
    -- The fake answers absolute-form requests, so it can stand in for the proxy.
    local c = spotify.client { client_id = "test-id", client_secret = "test-secret",
      api_base = "http://api.spotify.invalid/v1", token_url = "http://accounts.spotify.invalid/api/token",
      proxy = f.base }
    local t = assert(c:track(ID))
    assert.equal(ID, t.id)
    local log = f:log()
    assert.equal("http://accounts.spotify.invalid/api/token", log[1].target)
    assert.equal("http://api.spotify.invalid/v1/tracks/" .. ID, log[2].target)
    assert.equal("api.spotify.invalid", log[2].host)
  end)

  it("sends the user_agent option", function()
    local c = spotify.client(fake.client_opts(f, { user_agent = "my-game/2.0" }))
    assert(c:track(ID))
    assert.equal("my-game/2.0", f:log()[2].user_agent)
  end)

  it("takes credentials from SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET", function()
    local script = ([[
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      package.cpath = "%s/?.so;" .. package.cpath
      local c = require("spotify").client { api_base = "%s", token_url = "%s" }
      local t = assert(c:track("%s"))
      io.write(t.id)
    ]]):format(os.getenv "SPOTIFY_BUILD" or "build/lua5.4", f.api_base, f.token_url, ID)
    local path = os.tmpname()
    local h = assert(io.open(path, "w"))
    h:write(script)
    h:close()
    local p = assert(io.popen(("SPOTIFY_CLIENT_ID=test-id SPOTIFY_CLIENT_SECRET=test-secret %s %s 2>&1")
      :format(lua_binary(), path)))
    local out = p:read "*a"
    p:close()
    os.remove(path)
    assert.equal(ID, out)
    assert.equal("Basic dGVzdC1pZDp0ZXN0LXNlY3JldA==", f:log()[1].authorization)
  end)

  it("reports a refused connection to the token endpoint as network, naming the URL", function()
    local c = spotify.client { client_id = "a", client_secret = "b", max_retries = 0,
      token_url = "http://127.0.0.1:1/api/token", api_base = f.api_base }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("network", err.kind)
    assert.equal("POST", err.method)
    assert.equal("http://127.0.0.1:1/api/token", err.url)
    assert.equal(0, #f:log())
  end)
end)
