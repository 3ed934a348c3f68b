-- Inputs the fuzz targets (fuzz/) found to break an invariant, kept as specs
-- so the fixes stay fixed.
local core = require "spotify.core"
local testing = core.testing()
local spotify = require "spotify"
local fake = require "spec.support.fake"

describe("fuzz findings", function()
  it("classify: a status outside 0-999 is a bad_request, not a read past the table", function()
    -- fuzz_classify: global-buffer-overflow in find_rule for status 0x7272657b
    for _, status in ipairs { 1000, 1920099707, -1, -2147483647, 2147483647 } do
      for _, for_token in ipairs { false, true } do
        local kind, retry, renew = testing.classify(status, for_token)
        assert.equal("bad_request", kind)
        assert.is_false(retry)
        assert.is_false(renew)
      end
    end
  end)

  it("parse_id: '.' and '..' are no user IDs (they would climb the path)", function()
    -- fuzz_ids: "\8." accepted "." as a user ID; client:user("..") sent GET /v1/
    for _, input in ipairs { ".", "..", "spotify:user:..", "https://open.spotify.com/user/..?si=1" } do
      local id, why = core.parse_id(input, "user")
      assert.is_nil(id)
      assert.matches("invalid user id", why)
    end
    assert.equal("john.smith", core.parse_id("john.smith", "user"))
    assert.equal("...", core.parse_id("...", "user"))
  end)

  it("client:user('..') sends nothing", function()
    local f = fake.start()
    local c = spotify.client(fake.client_opts(f))
    local v, err = c:user ".."
    local w, err2 = c:user_playlists ".."
    c:close()
    local log = f:log()
    f:stop()
    assert.is_nil(v)
    assert.is_nil(w)
    assert.equal("invalid_argument", err.kind)
    assert.equal("invalid_argument", err2.kind)
    assert.equal(0, #log)
  end)

  it("query: a parameter name with a NUL is refused, not cut short", function()
    -- fuzz_query: {["limi\0\0t..."] = ...} was sent as "limi=..."
    local qs, why = core.query { ["limi\0t"] = 5 }
    assert.is_nil(qs)
    assert.matches("names must be strings", why)
    qs = core.query { ["a\0b"] = 1, a = 2 }
    assert.is_nil(qs)
  end)

  it("parse_token: an infinite expires_in is refused", function()
    -- fuzz_token: {"access_token":"t...","expires_in":71e999} gave a token that never expires
    local tok, why = testing.parse_token '{"access_token":"tok","expires_in":71e999}'
    assert.is_nil(tok)
    assert.matches("positive expires_in", why)
    assert.equal("tok", (testing.parse_token '{"access_token":"tok","expires_in":1e300}'))
  end)
  it("printing an error with a long server message and a retry_after stays in bounds", function()
    -- Found reading errors.c, caught by fuzz_classify since: the buffer grew
    -- while a value sat above it (heap-use-after-free under ASan).
    local errors = require "spotify.errors"
    collectgarbage("step", 0)
    for n = 990, 1100, 3 do
      local e = errors.new("rate_limited", { status = 429, message = ("m"):rep(n), retry_after = n + 0.5,
        method = "GET", url = "http://x/v1/tracks" })
      local text = tostring(e)
      assert.equal(("spotify: rate_limited (429): %s (retry after %s s) [GET http://x/v1/tracks]"):format(
        ("m"):rep(n), tostring(n + 0.5)), text)
    end
  end)

  it("a Retry-After of 1e308 is shared as at most a day, and a huge lock ttl stays in bounds", function()
    -- fuzz_engine: the shared penalty's text overflowed a 64-byte buffer
    -- (stack-buffer-overflow under ASan) for Retry-After: 1e308.
    local f = fake.start {}
    finally(function() f:stop() end)
    f:faults { { path = "/v1/tracks", status = 429, headers = { ["Retry-After"] = "1e308" }, times = 1 } }
    local cache = spotify.cache.memory()
    local c = spotify.client(fake.client_opts(f, { cache = cache }))
    local _, err = c:track("4iV5W9uYEdYUVa79Axb7Rh")
    assert.equal("rate_limited", err.kind)
    local until_ = tonumber(cache:get(require("spec.support.keys").penalty "test-id"):match "^%S+")
    assert.is_true(until_ > testing.time() + 86000 and until_ <= testing.time() + 86400, tostring(until_))
    local dir = io.popen("mktemp -d"):read "*l"
    local file = spotify.cache.file(dir .. "/t.json")
    assert.is_true(file:lock("k", 1e308))
    file:unlock("k")
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
