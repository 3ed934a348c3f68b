-- spotify.gateway as examples/gateway ships it, in a real nginx (2 workers)
-- against the fake Spotify: what it refuses (and that nothing refused goes
-- upstream), that Spotify's answers reach the caller as sent, batch windows
-- across callers, X-Api-Key, /metrics, and that no answer carries the
-- secret or a token (every answer of every test is searched).
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"
local spotify = require "spotify"
local fake = require "spec.support.fake"
local gateway = require "spec.support.gateway"
local nginx = require "spec.support.nginx"
local socket = require "socket"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

-- Spotify's error shape: {"error": {"status": N, "message": "..."}}
local function assert_error_shape(status, body, headers)
  assert.matches("^application/json", headers["content-type"])
  local decoded = cjson.decode(body)
  assert.equal(status, decoded.error.status)
  assert.equal("string", type(decoded.error.message))
  return decoded.error
end

-- GET straight from the fake with the gateway's token: what Spotify sent.
local function from_fake(f, path)
  local token
  for _, e in ipairs(f:log_for "/v1/") do token = e.authorization or token end
  local out = {}
  local _, status = http.request { url = f.api_base .. path, sink = ltn12.sink.table(out),
    headers = { authorization = token } }
  return status, table.concat(out)
end

describe("spotify.gateway in nginx", function()
  local f, node

  setup(function()
    f = fake.start {}
    node = gateway.start(f, { workers = 2, env = { SPOTIFY_BATCH_WINDOW = "0.2" } })
    -- the workers' warm-up: one token for both, through the shared dict
    assert.truthy(gateway.eventually(function() return #f:log_for "/api/token" >= 1 end))
  end)
  teardown(function()
    if node then node:stop() end
    if f then f:stop() end
  end)
  after_each(function()
    assert.is_nil(gateway.leaks(node.answers, f), "an answer carries a secret")
  end)

  it("refuses what is not the catalog's GETs, in Spotify's error shape, with nothing sent upstream", function()
    local mark = #f:log()
    local ids51 = {}
    for i, id in ipairs(fake.ids(51)) do ids51[i] = id end
    local cases = {
      { "POST", "/v1/tracks/" .. ID, 405 },
      { "DELETE", "/v1/playlists/" .. ID, 405 },
      { "GET", "/v1/me", 404 },
      { "GET", "/v1/me/player", 404 },
      { "GET", "/v1/playlists/" .. ID .. "/followers", 404 },
      { "GET", "/etc/passwd", 404 },
      { "GET", "/v1", 404 },
      { "GET", "/v1/tracks/", 404 },
      { "GET", "/v1//tracks/" .. ID, 404 },
      { "GET", "/v1/../etc/passwd", 400 },
      { "GET", "/v1/tracks/../me", 400 },
      { "GET", "/v1/tracks/4iV5W9uYEdYUVa79Ax%2F" .. "b7R", 400 },
      { "GET", "/v1/tracks/4iV5W9uYEdYUVa79Axb7R%2e", 400 },
      { "GET", "/v1/tracks/" .. ("a"):rep(10000), 414 },
      { "GET", "/v1/search?type=track&q=" .. ("a"):rep(5000), 414 },
      { "GET", "/v1/tracks/not-an-id", 400 },
      { "GET", "/v1/tracks/" .. ID .. "x", 400 },
      { "GET", "/v1/tracks?ids=" .. ID .. ",nope", 400 },
      { "GET", "/v1/tracks?ids=" .. table.concat(ids51, ","), 400 },
      { "GET", "/v1/tracks/" .. ID .. "?secret_param=1", 400 },
      { "GET", "/v1/tracks/" .. ID .. "?market=US%0D%0AX:1&x=<", 400 },
    }
    for _, c in ipairs(cases) do
      local status, body, headers = node:request(c[1], c[2])
      assert.equal(c[3], status, c[1] .. " " .. c[2]:sub(1, 80) .. ": " .. tostring(body))
      assert_error_shape(c[3], body, headers)
      if c[3] == 405 then assert.equal("GET", headers.allow) end
    end
    assert.same({}, f:log_for("/v1/", mark))
  end)

  it("hands on Spotify's answer as Spotify sent it: status, text, Cache-Control and ETag", function()
    local ids = fake.ids(3, "C")
    local path = "/tracks?ids=" .. table.concat(ids, ",") .. "&market=US"
    f:faults { { path = "/v1/tracks", query_contains = "market=US", times = -1,
      headers = { ["Cache-Control"] = "public, max-age=7200", ETag = '"v7"' } } }
    local status, body, headers = node:get(path)
    f:faults {}
    assert.equal(200, status, body)
    assert.equal("public, max-age=7200", headers["cache-control"])
    assert.equal('"v7"', headers.etag)
    assert.matches("^application/json", headers["content-type"])
    -- the fake's own text, byte for byte (lua-cjson would write it otherwise)
    local direct_status, direct = from_fake(f, path)
    assert.equal(200, direct_status)
    assert.equal(direct, body)
    -- a search and a paging object too, with their parameters as Spotify takes them
    local s_status, s_body = node:get "/search?q=muse&type=track,artist&limit=3&offset=2"
    assert.equal(200, s_status, s_body)
    assert.equal(select(2, from_fake(f, "/search?q=muse&type=track,artist&limit=3&offset=2")), s_body)
  end)

  it("answers a repeated request from the response cache: the kept text, nothing upstream", function()
    local single = "/albums/" .. fake.ids(1, "J")[1]
    local path = "/albums?ids=" .. table.concat(fake.ids(2, "K"), ",")
    local status, first = node:get(path)
    assert.equal(200, status, first)
    local single_status, single_first = node:get(single)
    assert.equal(200, single_status, single_first)
    -- both workers: each asks the shared tier (the answers dict), never Spotify again
    local mark = #f:log()
    for _ = 1, 6 do
      local again_status, again = node:get(path)
      assert.equal(200, again_status)
      -- a batch is kept per item: the answer is put together from the kept
      -- texts of its items, the same JSON in the caller's order
      assert.same(cjson.decode(first), cjson.decode(again))
      local single_again_status, single_again = node:get(single)
      assert.equal(200, single_again_status)
      assert.equal(single_first, single_again) -- a single answer is handed on as kept, byte for byte
    end
    assert.same({}, f:log_for("/v1/", mark))
  end)

  it("passes Spotify's errors on with Spotify's status and message", function()
    local missing = fake.ids(1, "M")[1]
    f:faults { { path = "/v1/artists/" .. missing .. "/top-tracks", status = 404, times = 1,
      body = '{"error": {"status": 404, "message": "Non existing id"}}' } }
    local status, body, headers = node:get("/artists/" .. missing .. "/top-tracks?market=DE")
    assert.equal(404, status, body)
    assert.equal("Non existing id", assert_error_shape(404, body, headers).message)
  end)

  it("sends the single lookups of many callers in one window as one batch request", function()
    local ids = fake.ids(20, "W")
    local paths = {}
    for i, id in ipairs(ids) do paths[i] = "/v1/tracks/" .. id end
    local mark = #f:log()
    local results = node.server:parallel(paths, #paths)
    for i, r in ipairs(results) do
      assert.equal(200, r.status, r.body)
      assert.equal(ids[i], cjson.decode(r.body).id)
    end
    local upstream = f:log_for("/v1/", mark)
    -- a window per worker at most (and a little room for a loaded machine)
    assert.is_true(#upstream <= 4, #upstream .. " requests upstream for 20 lookups")
    local asked = 0
    for _, e in ipairs(upstream) do
      assert.equal("/v1/tracks", e.path)
      for _ in e.query:gsub("%%2C", ","):match("ids=([^&]*)"):gmatch "[^,]+" do asked = asked + 1 end
    end
    assert.equal(20, asked)
  end)

  it("counts its requests by path kind and outcome beside the client's counters in /metrics", function()
    node:get("/tracks/" .. ID .. "/nothing")
    node:get("/markets")
    local status, text = node:request("GET", "/metrics")
    assert.equal(200, status)
    local function sample(name) return tonumber(text:match("\n" .. name:gsub("%p", "%%%0") .. " (%d+)\n")) end
    assert.is_true(sample 'spotify_gateway_requests_total{app="test-id",path="other",outcome="refused"}' >= 1)
    assert.is_true(sample 'spotify_gateway_requests_total{app="test-id",path="markets",outcome="2xx"}' >= 1)
    assert.is_true(sample 'spotify_requests_total{app="test-id",outcome="2xx"}' >= 1)
    assert.equal(1, sample 'spotify_token_fetches_total{app="test-id"}')
  end)

  it("serves every catalog method of a client that points at it, with no credentials", function()
    local c = spotify.client { gateway = node.base }
    local track = assert(c:track(ID))
    assert.equal(ID, track.id)
    local many = fake.ids(60, "P")
    local tracks = assert(c:tracks(many))
    assert.equal(60, #tracks)
    for i, t in ipairs(tracks) do assert.equal(many[i], t.id) end
    local first = assert(c:album_tracks("4aawyAB9vmqN3uQ7FjRGTy", { limit = 2 }))
    local all = assert(c:all(first, { max = 7 }))
    assert.equal(7, #all)
    local found = assert(c:search("muse", { type = "track", limit = 2 }))
    local n = 0
    for _ in c:items(found.tracks) do
      n = n + 1
      if n == 5 then break end
    end
    assert.equal(5, n)
    assert.is_table(assert(c:markets()))
    assert.is_table(assert(c:artist_top_tracks(ID, { market = "US" })))
    assert.is_table(assert(c:user("bob")))
    assert.is_table(assert(c:get("/tracks/" .. ID)))
    assert.equal(0, c:stats().token_fetches)
    c:close()
  end)

  it("serves a client's started requests (libcurl multi) and a client inside nginx (cosockets)", function()
    local c = spotify.client { gateway = node.base }
    local reqs = { c:start("track", ID), c:start("search", "muse", { type = "artist", limit = 2 }),
      c:start("albums", fake.ids(25, "Q")) }
    while not (reqs[1]:done() and reqs[2]:done() and reqs[3]:done()) do c:poll(0.05) end
    assert.equal(ID, assert(reqs[1]:result()).id)
    assert.is_table(assert(reqs[2]:result()).artists)
    assert.equal(25, #assert(reqs[3]:result()))
    c:close()
    local other = nginx.start {
      http = nginx.package_paths(),
      server = ([[
        location = /t {
          content_by_lua_block {
            local spotify = require "spotify"
            local c = spotify.client { gateway = %q }
            local t = assert(c:track(%q))
            local many = assert(c:tracks({ %q, %q }))
            local all = assert(c:all(assert(c:album_tracks("4aawyAB9vmqN3uQ7FjRGTy", { limit = 3 })), { max = 8 }))
            ngx.say(require("cjson").encode { t.id, #many, #all, c:stats().token_fetches })
          }
        }]]):format(node.base, ID, ID, fake.ids(1, "N")[1]),
    }
    local status, body = other:get "/t"
    other:stop()
    assert.equal(200, status, body)
    assert.same({ ID, 2, 8, 0 }, cjson.decode(body))
  end)
end)

describe("spotify.gateway with keys", function()
  local f, node

  setup(function()
    f = fake.start {}
    node = gateway.start(f, { workers = 1, env = { SPOTIFY_GATEWAY_KEYS = "key-one,key-two" } })
  end)
  teardown(function()
    if node then node:stop() end
    if f then f:stop() end
  end)
  after_each(function()
    assert.is_nil(gateway.leaks(node.answers, f), "an answer carries a secret")
  end)

  it("answers 401 without X-Api-Key or with another key, and serves a known key", function()
    local mark = #f:log()
    local status, body, headers = node:get("/tracks/" .. ID)
    assert.equal(401, status)
    assert_error_shape(401, body, headers)
    status, body, headers = node:get("/tracks/" .. ID, { ["X-Api-Key"] = "key-three" })
    assert.equal(401, status)
    assert_error_shape(401, body, headers)
    assert.same({}, f:log_for("/v1/", mark))
    status, body = node:get("/tracks/" .. ID, { ["X-Api-Key"] = "key-two" })
    assert.equal(200, status, body)
    assert.equal(ID, cjson.decode(body).id)
  end)

  it("is an auth error for a client with a wrong gateway_key or none", function()
    for _, key in ipairs { false, "key-three" } do
      local c = spotify.client { gateway = node.base, gateway_key = key or nil }
      local value, err = c:track(ID)
      assert.is_nil(value)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      c:close()
    end
    local c = spotify.client { gateway = node.base, gateway_key = "key-one" }
    assert.equal(ID, assert(c:track(ID)).id)
    c:close()
  end)
end)

describe("spotify.gateway with keys in a shared dict", function()
  it("admits the keys the dict holds, and no other", function()
    local f = fake.start {}
    local files = require "spec.support.files"
    local lua = assert(files.read_file "examples/gateway/gateway.lua")
      :gsub("keys = keys%(%),", "keys = ngx.shared.gateway_keys,")
    lua = 'ngx.shared.gateway_keys:set("key-dict", true)\n' .. lua
    local node = gateway.start(f, { workers = 1, http = "lua_shared_dict gateway_keys 1m;", gateway_lua = lua })
    finally(function()
      node:stop()
      f:stop()
    end)
    assert.equal(401, (node:get("/tracks/" .. ID)))
    assert.equal(401, (node:get("/tracks/" .. ID, { ["X-Api-Key"] = "key-other" })))
    local status, body = node:get("/tracks/" .. ID, { ["X-Api-Key"] = "key-dict" })
    assert.equal(200, status, body)
    assert.is_nil(gateway.leaks(node.answers, f))
  end)
end)

describe("spotify.gateway and the app's quota", function()
  local f, node

  setup(function()
    f = fake.start {}
    node = gateway.start(f, { workers = 2 })
  end)
  teardown(function()
    if node then node:stop() end
    if f then f:stop() end
  end)
  after_each(function()
    assert.is_nil(gateway.leaks(node.answers, f), "an answer carries a secret")
  end)

  it("answers 502, never 401, when Spotify refuses the gateway's token (a caller would take it for its key)", function()
    -- the token renewed once, then refused again
    f:faults { { path = "/v1/shows/" .. ID .. "/episodes", status = 401, times = 2 } }
    local status, body, headers = node:get("/shows/" .. ID .. "/episodes?limit=2")
    assert.equal(502, status, body)
    assert.matches("token", assert_error_shape(502, body, headers).message)
  end)

  it("passes a 429 on with Retry-After and its reason, and holds every caller until then", function()
    f:faults { { path = "/v1/artists", status = 429, reason = "QUOTA_EXCEEDED", headers = { ["Retry-After"] = "120" },
      times = 1 } }
    local status, body, headers = node:get("/artists/" .. ID .. "/related-artists")
    assert.equal(429, status, body)
    assert.equal("120", headers["retry-after"])
    assert.equal("QUOTA_EXCEEDED", assert_error_shape(429, body, headers).reason)
    -- the penalty is the app's: any other request, on either worker, waits
    -- for it (beyond max_retry_after: refused at once) and goes nowhere
    local mark = #f:log()
    for _ = 1, 4 do
      local s, b, h = node:get("/albums/" .. ID .. "/tracks")
      assert.equal(429, s, b)
      assert.truthy(tonumber(h["retry-after"]) > 60)
    end
    assert.same({}, f:log_for("/v1/", mark))
  end)
end)

-- Lookups ask alone (no window: the gateway's get_raw) or in batch windows
-- (the example's default: a hit of the worker's own tier, else the items
-- of a window's batch GET).
for _, window in ipairs { "0", "0.005" } do
  describe("spotify.gateway with stale_while_revalidate, batch_window " .. window, function()
    local f, node

    setup(function()
      f = fake.start {}
      -- the example as shipped, its answers kept 1 s and handed out 60 s
      -- beyond while one request renews them
      local lua = assert(require("spec.support.files").read_file "examples/gateway/gateway.lua")
      local n
      lua, n = lua:gsub("stale_if_error = 3600,", "stale_if_error = 3600, stale_while_revalidate = 60,")
      assert.equal(1, n)
      lua, n = lua:gsub(" track = 86400,", " track = 1,")
      assert.equal(1, n)
      node = gateway.start(f, { workers = 2, gateway_lua = lua, env = { SPOTIFY_BATCH_WINDOW = window } })
      assert.truthy(gateway.eventually(function() return #f:log_for "/api/token" >= 1 end))
    end)
    teardown(function()
      if node then node:stop() end
      if f then f:stop() end
    end)
    after_each(function()
      assert.is_nil(gateway.leaks(node.answers, f), "an answer carries a secret")
    end)

    it("answers 100 concurrent callers from the expired answer at once; 1 request renews it", function()
      local status, first = node:get("/tracks/" .. ID)
      assert.equal(200, status, first)
      assert.equal(1, #f:log_for "/v1/tracks")
      socket.sleep(2) -- past the 1 s ttl: expired, and 58 s inside the 60 s
      -- Spotify now takes 0.5 s to answer
      f:faults { { path = "/v1/tracks", delay = 0.5, times = -1 } }
      local mark = #f:log()
      local paths = {}
      for i = 1, 100 do paths[i] = "/v1/tracks/" .. ID end
      local results = node.server:parallel(paths, #paths)
      local slowest, sum = 0, 0
      for i = 1, 100 do
        local r = results[i]
        assert.equal(200, r.status, r.body)
        assert.equal(ID, cjson.decode(r.body).id)
        slowest, sum = math.max(slowest, r.time), sum + r.time
      end
      print(("\n  stale_while_revalidate through the gateway (window %s): 100 answers, mean %.1f ms, slowest %.1f ms")
        :format(window, sum / 100 * 1000, slowest * 1000))
      assert.is_true(slowest < 0.3, ("slowest answer took %.3f s"):format(slowest))
      -- one renewal for both workers: it arrives, and no other follows it
      assert.truthy(gateway.eventually(function() return #f:log_for("/v1/tracks", mark) >= 1 end, 20))
      assert.falsy(gateway.eventually(function() return #f:log_for("/v1/tracks", mark) >= 2 end, 3))
      assert.equal(1, #f:log_for("/v1/", mark))
      assert.equal("/v1/tracks/" .. ID, f:log_for("/v1/", mark)[1].path)
      f:faults {}
    end)
  end)
end
