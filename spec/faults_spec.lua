-- The fault matrix: every fault the fake can inject, at the token endpoint
-- and at an API call, crossed with max_retries 0 and 2. Each case ends in the
-- documented result kind after the documented number of attempts, counted in
-- the fake's request log (what really reached the server) and in on_request.
-- Backoff waits run on a virtual clock (spec/support/virtual_clock.lua);
-- timeouts and slow answers are real.
local clock = require("spec.support.virtual_clock").install()
local spotify = require "spotify"
local fake = require "spec.support.fake"
local files = require "spec.support.files"
local free_port = files.free_port

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local RETRY_SETTINGS = { 0, 2 }
local BACKOFF_MIN = 0.25 -- first backoff: 0.5 s times a jitter of at least 0.5

local function many_headers(n)
  local h = {}
  for i = 1, n do h["X-Fill-" .. i] = "v" end
  return h
end

-- kind = nil means the call succeeds; retried = true means the fault is
-- retried, so it takes 1 + max_retries attempts.
local MATRIX = {
  { name = "500", fault = { status = 500 }, kind = "server", status = 500, retried = true },
  { name = "502", fault = { status = 502 }, kind = "server", status = 502, retried = true },
  { name = "503", fault = { status = 503 }, kind = "server", status = 503, retried = true },
  { name = "429 without Retry-After", fault = { status = 429 }, kind = "rate_limited", status = 429,
    retried = true, min_wait = BACKOFF_MIN },
  { name = "429 with Retry-After 0", fault = { status = 429, headers = { ["Retry-After"] = "0" } },
    kind = "rate_limited", status = 429, retried = true, retry_after = 0, min_wait = BACKOFF_MIN },
  { name = "429 with Retry-After 30", fault = { status = 429, headers = { ["Retry-After"] = "30" } },
    kind = "rate_limited", status = 429, retried = true, retry_after = 30, min_wait = 30 },
  { name = "429 with Retry-After 86400", fault = { status = 429, headers = { ["Retry-After"] = "86400" } },
    kind = "rate_limited", status = 429, retried = false, retry_after = 86400 },
  { name = "connection dropped before the answer", fault = { action = "drop" }, kind = "network",
    retried = true },
  { name = "connection dropped during a chunked body", fault = { action = "drop_mid_chunks" },
    kind = "network", retried = true },
  { name = "truncated body", fault = { action = "truncate" }, kind = "network", retried = true },
  { name = "bad JSON", fault = { action = "bad_json" }, kind = "decode", status = 200, retried = false },
  { name = "HTML error page (502)", fault = { action = "html", status = 502 }, kind = "server",
    status = 502, retried = true },
  { name = "HTML page with 200", fault = { action = "html" }, kind = "decode", status = 200,
    retried = false },
  { name = "empty body", fault = { action = "empty" }, kind = "decode", status = 200, retried = false },
  { name = "empty body with 503", fault = { action = "empty", status = 503 }, kind = "server",
    status = 503, retried = true },
  { name = "wrong content type", fault = { action = "wrong_ctype" }, kind = nil, retried = false },
  { name = "slow header inside timeout", fault = { action = "slow_headers", seconds = 0.3 },
    kind = nil, retried = false, timeout = 5 },
  { name = "slow header past timeout", fault = { action = "slow_headers", seconds = 2 },
    kind = "timeout", retried = true, timeout = 0.5 },
  { name = "slow body past timeout", fault = { action = "slow_body", seconds = 3 },
    kind = "timeout", retried = true, timeout = 0.5 },
  { name = "body above max_body", fault = { body = ("x"):rep(100000) }, kind = "decode",
    retried = false, max_body = 20000 },
  { name = "150 header lines", fault = { headers = many_headers(150) }, kind = "decode", retried = false },
  -- over libcurl's own bound on one header line (100 kB): too large, as
  -- any header line over 8 KiB is, not "out of memory"
  { name = "a 200 kB header line", fault = { headers = { ["X-Big"] = ("a"):rep(200000) } },
    kind = "decode", retried = false },
}

-- Where a fault is injected, and how its attempts show in the fake's log.
local ENDPOINTS = {
  { name = "token endpoint", path = "/api/token" },
  { name = "API call", path = "/v1/tracks" },
}

local function sh(cmd)
  assert(files.run(cmd), "command failed: " .. cmd)
end

-- A second fake whose certificate names only "wrong.invalid": connecting to
-- it as localhost must fail verification. Steered like any fake.
local function start_misnamed_tls_fake(like)
  local dir = fake.workdir()
  local cert, key = dir .. "/wrong-cert.pem", dir .. "/wrong-key.pem"
  sh(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 -subj /CN=wrong.invalid "
    .. "-addext subjectAltName=DNS:wrong.invalid >/dev/null 2>&1"):format(key, cert))
  local proc = assert(io.popen(("exec python3 spec/support/fake_spotify.py --tls-cert %s --tls-key %s")
    :format(cert, key)))
  local port, tls_port = assert(proc:read "*l"):match "^(%d+)%s+(%d+)"
  local other = setmetatable({ proc = proc, port = tonumber(port) }, getmetatable(like))
  other.base = "http://127.0.0.1:" .. port
  other.tls_base = "https://localhost:" .. tls_port
  other.ca_file = cert
  return other
end

describe("fault matrix", function()
  local f, token_url
  setup(function() f = fake.start { tls = true } end)
  teardown(function() if f then f:stop() end end)
  before_each(function()
    f:reset()
    clock.reset()
    -- The token comes from another host name than the API, so the first API
    -- attempt opens its own connection and libcurl's silent repeat of a
    -- request on a reused connection that died cannot blur the counts.
    token_url = f.token_url:gsub("127%.0%.0%.1", "localhost")
  end)

  -- A client of the fake; `records` collects its on_request calls.
  local function client(retries, extra, records)
    local o = fake.client_opts(f, {
      max_retries = retries, token_url = token_url,
      on_request = function(info) records[#records + 1] = info end,
    })
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(o)
  end

  local function attempts_to(records, path)
    local n = 0
    for _, r in ipairs(records) do
      if not r.event and r.url:find(path, 1, true) then n = n + 1 end -- exchanges, not waits
    end
    return n
  end

  for _, endpoint in ipairs(ENDPOINTS) do
    for _, row in ipairs(MATRIX) do
      for _, retries in ipairs(RETRY_SETTINGS) do
        local expected = row.retried and 1 + retries or 1
        local title = ("%s: %s, max_retries %d -> %s after %d attempt(s)"):format(
          endpoint.name, row.name, retries, row.kind or "success", expected)
        it(title, function()
          local fault = { path = endpoint.path, times = -1 }
          for k, v in pairs(row.fault) do fault[k] = v end
          f:faults { fault }
          local records = {}
          local c = client(retries, { timeout = row.timeout or 5, max_body = row.max_body }, records)
          local value, err = c:track(ID)
          local stats = c:stats()
          c:close()

          assert.equal(expected, #f:log_for(endpoint.path))
          assert.equal(expected, attempts_to(records, endpoint.path))
          assert.equal(expected - 1, stats.retries)
          if row.kind == nil then
            assert.is_nil(err)
            assert.equal(ID, value.id)
            return
          end
          assert.is_nil(value)
          assert.is_true(spotify.is_error(err))
          assert.equal(row.kind, err.kind)
          assert.equal(row.status, err.status)
          assert.equal(row.retry_after, err.retry_after)
          assert.is_string(err.message)
          assert.is_truthy(err.url:find(endpoint.path, 1, true))
          if endpoint.path == "/api/token" then
            assert.equal(0, #f:log_for "/v1/") -- no API call without a token
          end
          -- One wait per retry, never shorter than the fault asks for.
          assert.equal(expected - 1, #clock.waits)
          for _, w in ipairs(clock.waits) do assert.is_true(w >= (row.min_wait or BACKOFF_MIN)) end
        end)
      end
    end
  end

  -- The same faults through the libcurl multi scheduler (client:start/poll).
  for _, row in ipairs(MATRIX) do
    local expected = row.retried and 3 or 1
    it(("started request: %s, max_retries 2 -> %s after %d attempt(s)"):format(
      row.name, row.kind or "success", expected), function()
      local fault = { path = "/v1/tracks", times = -1 }
      for k, v in pairs(row.fault) do fault[k] = v end
      f:faults { fault }
      local records = {}
      local c = client(2, { timeout = row.timeout or 5, max_body = row.max_body }, records)
      local req = c:start("track", ID)
      while not req:done() do c:poll(0.05) end
      local value, err = req:result()
      c:close()
      assert.equal(expected, #f:log_for "/v1/tracks")
      assert.equal(expected, attempts_to(records, "/v1/tracks"))
      if row.kind == nil then
        assert.equal(ID, value.id)
      else
        assert.is_nil(value)
        assert.equal(row.kind, err.kind)
        assert.equal(row.status, err.status)
        assert.equal(row.retry_after, err.retry_after)
      end
    end)
  end

  for _, endpoint in ipairs(ENDPOINTS) do
    for _, retries in ipairs(RETRY_SETTINGS) do
      it(("%s: connection refused, max_retries %d -> network after %d attempt(s)"):format(
        endpoint.name, retries, 1 + retries), function()
        local dead = "http://127.0.0.1:" .. free_port()
        local extra = endpoint.path == "/api/token" and { token_url = dead .. "/api/token" }
          or { api_base = dead .. "/v1" }
        local records = {}
        local c = client(retries, extra, records)
        local value, err = c:track(ID)
        c:close()
        assert.is_nil(value)
        assert.equal("network", err.kind)
        assert.is_nil(err.status)
        assert.equal(1 + retries, attempts_to(records, endpoint.path))
        assert.equal(retries, #clock.waits)
      end)

      it(("%s: TLS name mismatch, max_retries %d -> network after 1 attempt"):format(
        endpoint.name, retries), function()
        local other = start_misnamed_tls_fake(f)
        local extra = { ca_file = other.ca_file }
        if endpoint.path == "/api/token" then
          extra.token_url = other.tls_base .. "/api/token"
        else
          extra.api_base = other.tls_base .. "/v1"
        end
        local records = {}
        local c = client(retries, extra, records)
        local value, err = c:track(ID)
        c:close()
        local reached = other:log()
        other:stop()
        assert.is_nil(value)
        assert.equal("network", err.kind)
        assert.equal(1, attempts_to(records, endpoint.path))
        assert.equal(0, #reached) -- nothing was sent to a server that failed verification
        assert.equal(0, #clock.waits)
      end)
    end
  end

  for _, retries in ipairs(RETRY_SETTINGS) do
    it(("API call: token expired mid-run, max_retries %d -> one renewal, then success"):format(retries),
      function()
        local records = {}
        local c = client(retries, nil, records)
        assert(c:track(ID))
        f:faults { { path = "/v1/tracks", status = 401, fixture = "error_401_token_expired.json" } }
        local t, err = c:track(ID)
        local stats = c:stats()
        c:close()
        assert.is_nil(err)
        assert.equal(ID, t.id)
        assert.equal(3, #f:log_for "/v1/tracks")
        assert.equal(2, #f:log_for "/api/token")
        assert.equal(2, stats.token_fetches)
        assert.equal(0, stats.retries)
        local log = f:log_for "/v1/tracks"
        assert.are_not.equal(log[2].authorization, log[3].authorization)
      end)

    it(("API call: every token refused, max_retries %d -> auth after one renewal"):format(retries),
      function()
        local records = {}
        local c = client(retries, nil, records)
        f:faults { { path = "/v1/tracks", status = 401, fixture = "error_401_token_expired.json", times = -1 } }
        local t, err = c:track(ID)
        c:close()
        assert.is_nil(t)
        assert.equal("auth", err.kind)
        assert.equal(401, err.status)
        assert.equal(2, #f:log_for "/v1/tracks")
        assert.equal(2, #f:log_for "/api/token")
      end)
  end

  it("deadline bounds the total time spent retrying", function()
    f:faults { { path = "/v1/tracks", status = 503, times = -1 } }
    local records = {}
    local c = client(20, { deadline = 5 }, records)
    local t, err = c:track(ID)
    c:close()
    assert.is_nil(t)
    assert.equal("server", err.kind)
    assert.is_true(clock.total() <= 5)
    assert.is_true(#f:log_for "/v1/tracks" < 21)
    assert.is_true(#f:log_for "/v1/tracks" >= 2)
  end)
end)
