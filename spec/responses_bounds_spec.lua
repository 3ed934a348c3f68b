-- What the response cache keeps, and how much: only answers that decode
-- (a proxy's HTML page with a long max-age is a decode error once, never
-- kept), every ttl capped by max_ttl, entries bounded by max_entry_bytes,
-- the process tier by lru_bytes and the memory store by max_bytes, which
-- drops answers before a token or a penalty. Counts come from the fake's
-- log; the shared tier is a Lua table that records what it is given.
local spotify = require "spotify"
local fake = require "spec.support.fake"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local ANSWER = "response:"

local ids = fake.ids

-- A store over a plain table, recording each set's key and ttl.
local function table_store()
  local data, sets = {}, {}
  return {
    data = data, sets = sets,
    get = function(_, k) return data[k] end,
    set = function(_, k, v, ttl) sets[#sets + 1] = { key = k, ttl = ttl }; data[k] = v end,
  }
end

local function answers_in(store)
  local n = 0
  for _, s in ipairs(store.sets) do
    if s.key:sub(1, #ANSWER) == ANSWER then n = n + 1 end
  end
  return n
end

describe("the response cache's bounds", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  local function client(responses, extra)
    local o = { responses = responses, max_retries = 0 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(fake.client_opts(f, o))
  end

  local HTML = { path = "/v1/tracks/", action = "html", status = 200,
    headers = { ["Cache-Control"] = "max-age=3600" } }

  describe("only answers that decode are kept", function()
    -- one lookup through each libcurl driver: blocking, a started request, a plural call
    local drivers = {
      blocking = function(c, id) return c:track(id) end,
      started = function(c, id)
        local req = c:start("track", id)
        while not req:done() do c:poll(0.05) end
        return req:result()
      end,
      plural = function(c, id)
        local list, err = c:tracks { id, id }
        return list and list[1], err
      end,
    }
    for name, lookup in pairs(drivers) do
      for _, ttl in ipairs { false, 3600 } do
        local how = ttl and "a method ttl" or "max-age alone"
        it(("a non-JSON 200 with max-age=3600 (%s, %s): decode once, the next call asks again"):format(name, how),
          function()
            local store = table_store()
            local c = client(spotify.responses { store = store, ttl = ttl and { track = ttl } or nil },
              { batch = false })
            -- the page once, then the track with the same max-age
            f:faults { HTML, { path = "/v1/tracks/", headers = HTML.headers, times = -1 } }
            local v, err = lookup(c, ID)
            assert.is_nil(v)
            assert.equal("decode", err.kind)
            local asked = #f:log_for "/v1/tracks/"
            v = assert(lookup(c, ID))
            assert.equal(ID, v.id)
            assert.equal(asked + 1, #f:log_for "/v1/tracks/")
            assert.equal(0, c:stats().response_hits)
            -- the good answer is kept, the page never was
            assert.equal(1, answers_in(store))
            assert.matches('"id"', select(2, next(store.data)))
            c:close()
          end)
      end
    end

    it("a 200 that is JSON but not an object or array is a decode error, never kept", function()
      local store = table_store()
      local c = client(spotify.responses { store = store, ttl = { track = 3600 } })
      f:faults { { path = "/v1/tracks/", body = '"a string"', headers = { ["Cache-Control"] = "max-age=3600" } } }
      local v, err = c:track(ID)
      assert.is_nil(v)
      assert.equal("decode", err.kind)
      assert.equal(0, answers_in(store))
      assert(c:track(ID))
      assert.equal(2, #f:log_for "/v1/tracks/")
      c:close()
    end)

    it("an entry in the store that does not decode is a miss", function()
      local store = table_store()
      local url = f.api_base .. "/tracks/" .. ID
      store.data[ANSWER .. url] = ("%.3f %.3f\n<html>cached proxy page</html>"):format(os.time() + 3600,
        os.time() + 3600)
      local c = client(spotify.responses { store = store, ttl = { track = 3600 } })
      local t = assert(c:track(ID))
      assert.equal(ID, t.id)
      assert.equal(1, #f:log_for "/v1/tracks/")
      assert.equal(0, c:stats().response_shared_hits)
      -- replaced by the good answer, with its validators (the fake sends an ETag)
      assert.matches('^%S+ %S+ %S+\netag "%x+"\nlm [^\n]+\n{', store.data[ANSWER .. url])
      c:close()
    end)

    it("hands the caller the answer it decoded to check: each caller its own table", function()
      local c = client(spotify.responses { ttl = { track = 3600 } })
      local first = assert(c:track(ID))
      first.name = "changed"
      local second = assert(c:track(ID))
      assert.equal("Austerity", second.name)
      assert.equal(1, #f:log_for "/v1/tracks/")
      c:close()
    end)
  end)

  describe("max_ttl", function()
    local function entry_fresh_for(store)
      local _, value = next(store.data)
      return tonumber(value:match "^(%S+)") - os.time()
    end

    it("caps max-age=99999999999 at a day by default", function()
      local store = table_store()
      local c = client(spotify.responses { store = store })
      f:faults { { path = "/v1/tracks/", headers = { ["Cache-Control"] = "max-age=99999999999" } } }
      assert(c:track(ID))
      assert.equal(1, #store.sets)
      assert.is_true(store.sets[1].ttl <= 86400, store.sets[1].ttl)
      assert.is_true(entry_fresh_for(store) <= 86401)
      c:close()
    end)

    it("caps a method's ttl and max-age alike", function()
      for _, o in ipairs {
        { ttl = { track = 1e9 }, max_ttl = 60 },
        { max_ttl = 60, header = "max-age=99999999999" },
      } do
        local store = table_store()
        local c = client(spotify.responses { store = store, ttl = o.ttl, max_ttl = o.max_ttl })
        f:faults { { path = "/v1/tracks/", headers = { ["Cache-Control"] = o.header or "max-age=0" } } }
        assert(c:track(ID))
        assert.is_true(store.sets[1].ttl <= 60, store.sets[1].ttl)
        assert.is_true(entry_fresh_for(store) <= 61)
        c:close()
      end
    end)
  end)

  it("max_entry_bytes: a longer answer is handed out, not kept in either tier", function()
    local store = table_store()
    local c = client(spotify.responses { store = store, ttl = { track = 3600 }, max_entry_bytes = 1000 })
    for _ = 1, 2 do assert.equal(ID, assert(c:track(ID)).id) end -- ~4 KB each
    assert.equal(2, #f:log_for "/v1/tracks/")
    assert.equal(0, c:stats().response_hits)
    assert.equal(0, answers_in(store))
    c:close()
  end)

  it("lru_bytes bounds the process tier: the least recently used go first", function()
    local c = client(spotify.responses { ttl = { track = 3600 }, lru = 1000, lru_bytes = 10000 })
    local list = ids(10)
    for _, id in ipairs(list) do assert(c:track(id)) end -- ~4 KB each: two fit
    assert(c:track(list[10]))
    assert.equal(1, c:stats().response_hits)
    assert.equal(10, #f:log_for "/v1/tracks/")
    assert(c:track(list[1]))
    assert.equal(11, #f:log_for "/v1/tracks/")
    c:close()
  end)

  describe("spotify.cache.memory{max_bytes}", function()
    it("drops answers, least recently used first, never the token or a penalty", function()
      local m = spotify.cache.memory { max_bytes = 20000 }
      m:set("token:abc", "the token", 3600)
      m:set("penalty:app", "1e12", 600)
      local value = ("x"):rep(1000)
      for i = 1, 100 do m:set(ANSWER .. i, value, 3600) end
      assert.equal("the token", m:get "token:abc")
      assert.equal("1e12", m:get "penalty:app")
      local kept = 0
      for i = 1, 100 do if m:get(ANSWER .. i) then kept = kept + 1 end end
      assert.is_true(kept >= 10 and kept < 20, kept .. " answers kept")
      assert.equal(value, m:get(ANSWER .. 100))
      assert.is_nil(m:get(ANSWER .. 1))
      -- a lock let go gives its room back at once: 1000 of them hold nothing
      for i = 1, 1000 do
        assert.is_true(m:lock(ANSWER .. "lock" .. i, 30))
        m:unlock(ANSWER .. "lock" .. i)
      end
      for i = 101, 200 do m:set(ANSWER .. i, value, 3600) end
      local after = 0
      for i = 101, 200 do if m:get(ANSWER .. i) then after = after + 1 end end
      assert.equal(kept, after)
      -- an answer larger than the whole cache is not kept, and the older one goes
      m:set(ANSWER .. 100, "short", 3600)
      assert.has_error(function() m:set(ANSWER .. 100, ("y"):rep(30000), 3600) end)
      assert.is_nil(m:get(ANSWER .. 100))
      assert.equal("the token", m:get "token:abc")
    end)

    it("as a client's token cache and response store: the token stays however many answers come", function()
      local m = spotify.cache.memory { max_bytes = 50000 }
      local c = client(spotify.responses { store = m, ttl = { track = 3600 }, lru = 0 }, { cache = m })
      local list = ids(60) -- ~240 KB of answers
      for _, id in ipairs(list) do assert(c:track(id)) end
      local d = client(spotify.responses { store = m, ttl = { track = 3600 }, lru = 0 }, { cache = m })
      assert(d:track(list[60])) -- the latest answer is in the store
      assert.equal(1, d:stats().response_shared_hits)
      assert(d:track(list[1])) -- the first was dropped for the later ones
      assert.equal(61, #f:log_for "/v1/tracks/")
      assert.equal(1, #f:log_for "/api/token") -- d found the token in the store
      c:close()
      d:close()
    end)

    it("raises on a bad max_bytes or an unknown option", function()
      assert.has_error(function() spotify.cache.memory { max_bytes = 0 } end)
      assert.has_error(function() spotify.cache.memory { max_bytes = 1.5 } end)
      assert.has_error(function() spotify.cache.memory { colour = 1 } end)
      assert.has_error(function() spotify.cache.memory(5) end)
    end)
  end)

  it("raises on bad bounds, naming the option", function()
    for _, o in ipairs {
      { max_ttl = -1 }, { max_ttl = "x" }, { max_ttl = math.huge },
      { max_entry_bytes = 0 }, { max_entry_bytes = 1.5 },
      { lru_bytes = -1 }, { lru_bytes = "big" },
    } do
      local ok, err = pcall(spotify.responses, o)
      assert.is_false(ok)
      assert.matches(next(o), tostring(err))
    end
  end)
end)
