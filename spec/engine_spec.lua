-- The engine against the fake Spotify: tokens, errors, retries, keep-alive.
local spotify = require "spotify"
local fake = require "spec.support.fake"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

describe("engine", function()
  local f
  setup(function() f = fake.start { tls = true } end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  local function client(extra)
    return spotify.client(fake.client_opts(f, extra))
  end

  it("fetches a token lazily with Basic auth and calls the API with it", function()
    local c = client()
    assert.equal(0, #f:log())
    local t = assert(c:track(ID))
    assert.equal(ID, t.id)
    assert.equal("track", t.type)
    local log = f:log()
    assert.equal(2, #log)
    assert.equal("POST", log[1].method)
    assert.equal("/api/token", log[1].path)
    assert.equal("Basic dGVzdC1pZDp0ZXN0LXNlY3JldA==", log[1].authorization)
    assert.equal("grant_type=client_credentials", log[1].body)
    assert.equal("/v1/tracks/" .. ID, log[2].path)
    assert.matches("^Bearer tok%-", log[2].authorization)
    assert.matches("^lua%-spotify/0%.1%.0", log[2].user_agent)
    c:close()
  end)

  it("reuses the token and the connection (keep-alive)", function()
    local c = client()
    for _ = 1, 5 do assert(c:track(ID)) end
    local s = c:stats()
    assert.equal(1, s.token_fetches)
    assert.equal(6, s.requests)
    assert.equal(1, s.connections_opened)
    assert.is_true(s.bytes_received > 5 * 1000)
    local conns = {}
    for _, e in ipairs(f:log()) do conns[e.conn] = true end
    assert.equal(1, #(function() local l = {} for k in pairs(conns) do l[#l + 1] = k end return l end)())
    c:close()
  end)

  it("returns token and seconds left from access_token and renews before expiry", function()
    f:config { expires_in = 63 }
    local c = client { refresh_buffer = 60 }
    local tok, left = assert(c:access_token())
    assert.matches("^tok%-", tok)
    assert.is_true(left > 60 and left <= 63)
    local again = c:access_token()
    assert.equal(tok, again)
    assert.equal(1, c:stats().token_fetches)
    -- once less than refresh_buffer is left (by the client's own count),
    -- the token is renewed
    require("spotify.core").sleep(left - 60 + 0.05)
    local newer = assert(c:access_token())
    assert.are_not.equal(tok, newer)
    assert.equal(2, c:stats().token_fetches)
    c:close()
  end)

  it("renews once and repeats the request after an API 401", function()
    local c = client()
    assert(c:track(ID))
    f:config { revoke = true }
    local t = assert(c:track(ID))
    assert.equal(ID, t.id)
    assert.equal(2, c:stats().token_fetches)
    assert.equal(0, c:stats().retries)
  end)

  it("gives kind auth when a 401 persists after renewal", function()
    local c = client()
    f:faults { { path = "/v1/tracks", status = 401, fixture = "error_401_missing_invalid_expired.json", times = -1 } }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
    assert.equal("Missing/invalid/expired access token", err.message)
    assert.equal(2, c:stats().token_fetches)
  end)

  it("gives kind auth for refused credentials, without retrying", function()
    local c = client { client_secret = "wrong" }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("auth", err.kind)
    assert.equal(400, err.status)
    assert.matches("invalid_client", err.message, 1, true)
    assert.equal(1, #f:log())
    assert.equal("POST", err.method)
    assert.is_nil(tostring(err):find("wrong", 1, true))
  end)

  it("uses a fixed access_token as is and reports 401 as auth", function()
    local c = spotify.client { access_token = "not-issued", api_base = f.api_base }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("auth", err.kind)
    assert.equal(1, #f:log())
  end)

  local status_kinds = {
    { 400, "error_400_invalid_id.json", "bad_request", "invalid id" },
    { 403, "error_403_forbidden.json", "forbidden", "Forbidden" },
    { 403, "error_403_no_message.json", "forbidden", nil },
    { 404, "error_404_non_existing_id.json", "not_found", "non existing id" },
    { 418, nil, "bad_request", nil },
  }
  for _, case in ipairs(status_kinds) do
    it(("maps %d to %s without retrying"):format(case[1], case[3]), function()
      local c = client()
      f:faults { { path = "/v1/tracks", status = case[1], fixture = case[2], times = -1 } }
      local v, err = c:track(ID)
      assert.is_nil(v)
      assert.equal(case[3], err.kind)
      assert.equal(case[1], err.status)
      if case[4] then assert.equal(case[4], err.message) else assert.is_string(err.message) end
      assert.equal("GET", err.method)
      assert.equal(f.api_base .. "/tracks/" .. ID, err.url)
      assert.equal(1, #f:log_for("/v1/"))
      assert.equal(0, c:stats().retries)
    end)
  end

  it("retries 5xx with backoff and succeeds", function()
    local c = client()
    f:faults { { path = "/v1/tracks", status = 502, fixture = "error_502_bad_gateway.json", times = 2 } }
    assert(c:track(ID))
    assert.equal(3, #f:log_for("/v1/"))
    assert.equal(2, c:stats().retries)
  end)

  it("gives kind server after max_retries", function()
    local c = client { max_retries = 1 }
    f:faults { { path = "/v1/tracks", status = 503, times = -1 } }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("server", err.kind)
    assert.equal(503, err.status)
    assert.equal(2, #f:log_for("/v1/"))
  end)

  it("waits Retry-After on 429 and reports it when it persists", function()
    local c = client { max_retries = 1 }
    f:faults { { path = "/v1/tracks", status = 429, fixture = "error_429_rate_limited.json",
      headers = { ["Retry-After"] = "1" }, times = -1 } }
    local t0 = require("spotify.core").now()
    local v, err = c:track(ID)
    local took = require("spotify.core").now() - t0
    assert.is_nil(v)
    assert.equal("rate_limited", err.kind)
    assert.equal(1, err.retry_after)
    assert.equal("API rate limit exceeded", err.message)
    assert.is_true(took >= 1, "waited " .. took)
    assert.equal(2, #f:log_for("/v1/"))
  end)

  it("fails at once when Retry-After exceeds max_retry_after", function()
    local c = client { max_retry_after = 5 }
    f:faults { { path = "/v1/tracks", status = 429, headers = { ["Retry-After"] = "86400" }, times = -1 } }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("rate_limited", err.kind)
    assert.equal(86400, err.retry_after)
    assert.equal(1, #f:log_for("/v1/"))
  end)

  it("retries a connection dropped before or during the answer", function()
    local c = client()
    f:faults { { path = "/v1/tracks", action = "drop", times = 1 } }
    assert(c:track(ID))
    f:faults { { path = "/v1/tracks", action = "drop_mid_body", times = 1 } }
    assert(c:track(ID))
    assert.equal(1, c:stats().retries)
    assert.is_true(c:stats().connections_opened >= 2)
  end)

  it("gives kind network after retries on connection refused", function()
    local c = spotify.client { client_id = "a", client_secret = "b", token_url = "http://127.0.0.1:1/t",
      api_base = "http://127.0.0.1:1/v1", max_retries = 1 }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("network", err.kind)
    assert.is_nil(err.status)
    assert.equal(1, c:stats().retries)
  end)

  it("gives kind timeout when the server is slower than timeout", function()
    local c = client { timeout = 0.3, max_retries = 0 }
    assert(c:access_token())
    f:faults { { path = "/v1/tracks", delay = 1, times = 1 } }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("timeout", err.kind)
  end)

  it("gives kind decode for broken JSON, truncated and empty bodies", function()
    local c = client { max_retries = 0 }
    for _, action in ipairs { "bad_json", "empty" } do
      f:faults { { path = "/v1/tracks", action = action } }
      local v, err = c:track(ID)
      assert.is_nil(v, action)
      assert.equal("decode", err.kind, action)
    end
    f:faults { { path = "/v1/tracks", action = "truncate" } }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("network", err.kind)
  end)

  it("reads chunked bodies", function()
    local c = client()
    f:faults { { path = "/v1/tracks", action = "chunked" } }
    assert.equal(ID, assert(c:track(ID)).id)
  end)

  it("refuses a body larger than max_body", function()
    local c = client { max_body = 1000 }
    assert(c:access_token())
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.matches("max_body", err.message)
  end)

  it("bounds retries by deadline", function()
    local c = client { deadline = 1, max_retries = 10 }
    f:faults { { path = "/v1/tracks", status = 500, times = -1 } }
    local _, err = c:track(ID)
    assert.equal("server", err.kind)
    -- backoffs are 0.25-0.5, 0.5-1 and 1-2 s: a fourth attempt never fits
    -- in 1 s, whatever the machine's speed; without the deadline, 11 go out
    local attempts = #f:log_for "/v1/tracks"
    assert.is_true(attempts >= 1 and attempts <= 3, attempts .. " attempts")
  end)

  it("calls on_request after every exchange, without secrets", function()
    local seen = {}
    local c = client { on_request = function(info) seen[#seen + 1] = info end }
    f:faults { { path = "/v1/tracks", status = 500 } }
    assert(c:track(ID))
    -- a 500 then a 200: exactly two GET exchanges, and the token's POST
    assert.equal(3, #seen)
    assert.equal("POST", seen[1].method)
    assert.equal(200, seen[1].status)
    assert.equal("GET", seen[2].method)
    assert.equal(500, seen[2].status)
    assert.equal(1, seen[2].attempt)
    assert.equal("GET", seen[3].method)
    assert.equal(seen[2].url, seen[3].url)
    assert.equal(2, seen[3].attempt)
    assert.is_number(seen[3].elapsed)
    assert.is_true(seen[3].bytes > 0)
    for _, info in ipairs(seen) do assert.is_nil(info.event) end
    -- the backoff before the retry is counted, not told as an exchange
    local s = c:stats()
    assert.equal(1, s.retries)
    assert.is_true(s.retry_wait_s > 0)
    local tok = c:access_token()
    for _, info in ipairs(seen) do
      for _, v in pairs(info) do
        assert.is_nil(tostring(v):find("test-secret", 1, true))
        assert.is_nil(tostring(v):find(tok, 1, true))
      end
    end
  end)

  it("survives an on_request that raises", function()
    local c = client { on_request = function() error("boom") end }
    assert(c:track(ID))
  end)

  it("drops null object fields and keeps null array elements", function()
    local c = client()
    f:config { devmode = true } -- the 2026 dev-mode track has preview_url: null
    local t = assert(c:track(ID))
    assert.equal("track", t.type)
    assert.is_nil(t.preview_url)
    local list = assert(c:tracks { ID, "UnknownAAAAAAAAAAAAAAA", ID })
    assert.equal(3, #list)
    assert.equal(spotify.null, list[2])
  end)

  it("searches with type defaulting to track", function()
    local c = client()
    local r = assert(c:search("Muse", { limit = 5 }))
    assert.is_table(r.tracks)
    local e = f:log_for("/v1/search")[1]
    assert.equal("limit=5&q=Muse&type=track", e.query)
  end)

  it("gets any path with client:get", function()
    local c = client()
    local r = assert(c:get("/markets"))
    assert.is_table(r.markets)
    local _, err = c:get("/../evil")
    assert.equal("invalid_argument", err.kind)
  end)
end)

describe("TLS", function()
  local f
  setup(function() f = fake.start { tls = true } end)
  teardown(function() if f then f:stop() end end)

  it("verifies the server with ca_file", function()
    local c = spotify.client { client_id = "test-id", client_secret = "test-secret",
      api_base = f.tls_api_base, token_url = f.tls_token_url, ca_file = f.ca_file }
    local t = assert(c:track(ID))
    assert.equal(ID, t.id)
    for _ = 1, 3 do assert(c:track(ID)) end
    assert.equal(1, c:stats().connections_opened)
    assert.is_true(f:log()[2].tls)
  end)

  it("refuses an unknown certificate without ca_file, without retrying", function()
    local c = spotify.client { client_id = "test-id", client_secret = "test-secret",
      api_base = f.tls_api_base, token_url = f.tls_token_url }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("network", err.kind)
    assert.matches("certificate", err.message)
    assert.equal(0, c:stats().retries)
  end)
end)
