-- HTTP/2 through a real TLS front (nginx with http2) before the fake
-- Spotify: multiplexing on one connection, a GOAWAY and a stream reset in
-- the middle of a run, and the same answers as over HTTP/1.1.
local cjson = require "cjson"
local spotify = require "spotify"
local fake = require "spec.support.fake"
local h2 = require "spec.support.h2"

local ALBUM = "4EcfbzCtbJDk2wMwhT4D1h"
local UNKNOWN = "UnknownAAAAAAAAAAAAAAA"

local function ids(n, unknown_at)
  local out = {}
  for i = 1, n do out[i] = ("%022d"):format(i) end
  if unknown_at then out[unknown_at] = UNKNOWN end
  return out
end

local unpack = table.unpack or unpack -- luacheck: ignore 113 143

-- A value with the front's ports in its links replaced: answers over both
-- listeners then compare alike.
local function same_links(v, front)
  if v == nil then return nil end
  local text = cjson.encode(v):gsub("localhost:" .. front.port, "localhost:PORT")
    :gsub("localhost:" .. front.h1_port, "localhost:PORT")
  return cjson.decode(text)
end

-- The front's log entries of requests over HTTP/2 to paths under `prefix`,
-- once there are `want` of them.
local function entries(front, prefix, want)
  return front:log(want, function(e)
    return e.port == front.port and e.uri:sub(1, #prefix) == prefix and e.uri ~= "/_ready"
  end)
end

describe("HTTP/2", function()
  local f
  setup(function() f = fake.start { tls = true } end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  local function client(front, h1, extra)
    local o = { api_base = h1 and front.h1_api_base or front.api_base,
      token_url = h1 and front.h1_token_url or front.token_url, ca_file = front.ca_file,
      batch = false, concurrency = 16 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(fake.client_opts(f, o))
  end

  -- The 16 tracks over HTTP/1.1 through the same nginx: what every run over
  -- HTTP/2 must return.
  local function over_h1(front, list)
    local c = client(front, true)
    local want = assert(c:tracks(list))
    c:close()
    return want
  end

  describe("through a front that keeps its connections", function()
    local front
    setup(function() front = h2.start(f) end)
    teardown(function() if front then front:stop() end end)

    it("runs 16 concurrent requests as streams of one connection", function()
      local c = client(front)
      assert(c:access_token())
      local token = entries(front, "/api/token", 1)
      assert.equal(1, #token)
      assert.equal("HTTP/2.0", token[1].protocol)
      local before = c:stats()
      f:faults { { path = "/v1/tracks/", delay = 1, times = -1 } }
      local list = ids(16, 9)
      local out = assert(c:tracks(list))
      local after = c:stats()
      c:close()
      assert.equal(16, #out)
      assert.equal(spotify.null, out[9])
      assert.equal(list[16], out[16].id)
      local log = entries(front, "/v1/tracks/", 16)
      assert.equal(16, #log)
      for _, e in ipairs(log) do
        assert.equal("HTTP/2.0", e.protocol)
        assert.equal(token[1].conn, e.conn) -- the connection the token came over
      end
      assert.equal(0, after.connections_opened - before.connections_opened)
      assert.equal(16, after.requests - before.requests)
      -- all 16 reached the fake before its first (delayed) answer went out:
      -- streams in flight at once, not requests one after another
      local first, last = math.huge, -math.huge
      for _, e in ipairs(f:log_for "/v1/tracks/") do
        first, last = math.min(first, e.time), math.max(last, e.time)
      end
      assert.is_true(last - first < 1, ("requests arrived over %.2f s"):format(last - first))
      assert.same({}, front:complaints())
    end)

    it("returns what HTTP/1.1 returns, values and errors", function()
      f:config { totals = { album_tracks = 45 } }
      local c1, c2 = client(front, true, { batch = true }), client(front, false, { batch = true })
      local calls = {
        { "tracks", { ids(60, 7) } },
        { "album", { ALBUM } },
        { "search", { "roadhouse blues", { type = { "track", "artist" }, limit = 5 } } },
        { "track", { UNKNOWN } },
        { "get", { "/nowhere" } },
      }
      for _, call in ipairs(calls) do
        local name, args = call[1], call[2]
        local want, want_err = c1[name](c1, unpack(args))
        local got, got_err = c2[name](c2, unpack(args))
        assert.same(same_links(want, front), same_links(got, front), name)
        if want_err then
          assert.same({ want_err.kind, want_err.status, want_err.message },
            { got_err.kind, got_err.status, got_err.message }, name)
        else
          assert.is_nil(got_err, name)
        end
      end
      local all1 = assert(c1:all(assert(c1:album_tracks(ALBUM, { limit = 10 }))))
      local all2 = assert(c2:all(assert(c2:album_tracks(ALBUM, { limit = 10 }))))
      assert.equal(45, #all2)
      assert.same(all1, all2)
      c1:close()
      c2:close()
      local seen = {}
      for _, e in ipairs(front:log(0, function(e) return e.uri ~= "/_ready" end)) do
        seen[e.port == front.port and "h2" or "h1"] = true
        assert.equal(e.port == front.port and "HTTP/2.0" or "HTTP/1.1", e.protocol)
      end
      assert.same({ h1 = true, h2 = true }, seen)
    end)
  end)

  describe("through a front that sends GOAWAY after 5 streams", function()
    local front
    setup(function() front = h2.start(f, { keepalive_requests = 5 }) end)
    teardown(function() if front then front:stop() end end)

    it("repeats the streams the server refused and succeeds", function()
      local list = ids(16, 3)
      local want = over_h1(front, list)
      local c = client(front)
      assert(c:access_token())
      local out, err = c:tracks(list)
      c:close()
      assert.is_nil(err)
      assert.same(want, out)
      local log = entries(front, "/v1/tracks/", 16)
      assert.equal(16, #log) -- each answered once: refused streams were never served
      local per_conn, conns = {}, 0
      for _, e in ipairs(entries(front, "/", 17)) do
        assert.equal("HTTP/2.0", e.protocol)
        if not per_conn[e.conn] then conns = conns + 1 end
        per_conn[e.conn] = (per_conn[e.conn] or 0) + 1
      end
      for conn, n in pairs(per_conn) do assert.is_true(n <= 5, conn .. " served " .. n) end
      assert.is_true(conns >= 4, "only " .. conns .. " connections for 17 requests")
      assert.same({}, front:complaints())
    end)
  end)

  describe("through a front that resets a stream", function()
    local front
    setup(function() front = h2.start(f, { reset_at = 4 }) end)
    teardown(function() if front then front:stop() end end)

    it("retries the reset request and succeeds", function()
      local list = ids(16)
      local want = over_h1(front, list)
      local c = client(front)
      assert(c:access_token())
      local before = c:stats()
      local out, err = c:tracks(list)
      local after = c:stats()
      c:close()
      assert.is_nil(err)
      assert.same(want, out)
      local reset, answered = {}, {}
      for _, e in ipairs(entries(front, "/v1/tracks/", 17)) do
        assert.equal("HTTP/2.0", e.protocol)
        if e.status == 444 then reset[#reset + 1] = e.uri else answered[e.uri] = (answered[e.uri] or 0) + 1 end
      end
      assert.equal(1, #reset)
      assert.equal(1, answered[reset[1]]) -- the reset one, repeated once
      assert.equal(1, after.retries - before.retries)
      assert.equal(17, after.requests - before.requests)
      assert.same({}, front:complaints())
    end)
  end)
end)
