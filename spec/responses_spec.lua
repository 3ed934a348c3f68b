-- spotify.responses{...}: the response cache (process tier, shared tier,
-- ttl by method or max-age, only 200s, copies, stale_if_error). Counts come
-- from the fake's log.
local spotify = require "spotify"
local core = require "spotify.core"
local testing = core.testing()
local fake = require "spec.support.fake"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local ALBUM = "4EcfbzCtbJDk2wMwhT4D1h"

local ids = fake.ids
local cjson_null = require("cjson").null
local unpack = table.unpack or unpack -- luacheck: ignore 113 143

describe("spotify.responses", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  local function client(responses, extra)
    local o = { responses = responses, max_retries = 0 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(fake.client_opts(f, o))
  end

  describe("options", function()
    it("raises naming the option", function()
      assert.has_error(function() spotify.responses { ttl = "long" } end)
      assert.has_error(function() spotify.responses { ttl = { track = -1 } } end)
      assert.has_error(function() spotify.responses { lru = -1 } end)
      assert.has_error(function() spotify.responses { lru = 1.5 } end)
      assert.has_error(function() spotify.responses { store = 5 } end)
      assert.has_error(function() spotify.responses { stale_if_error = "x" } end)
      assert.has_error(function() spotify.responses { colour = 1 } end)
      assert.has_error(function() spotify.responses(5) end)
      local ok, err = pcall(spotify.responses, { lru = -1 })
      assert.is_false(ok)
      assert.matches("lru", tostring(err))
      ok, err = pcall(spotify.client, fake.client_opts(f, { responses = {} }))
      assert.is_false(ok)
      assert.matches("responses", tostring(err))
    end)

    it("takes no options at all", function()
      assert.equal("userdata", type(spotify.responses()))
      assert.equal("userdata", type(spotify.responses {}))
    end)
  end)

  describe("process tier", function()
    it("reaches Spotify once per distinct URL", function()
      local c = client(spotify.responses { ttl = { track = 3600 } })
      local list = ids(10)
      for round = 1, 5 do
        for _, id in ipairs(list) do
          local t = assert(c:track(id))
          assert.equal(id, t.id, "round " .. round)
        end
      end
      assert.equal(10, #f:log_for "/v1/tracks/")
      local s = c:stats()
      assert.equal(40, s.response_hits)
      assert.equal(0, s.response_shared_hits)
      c:close()
    end)

    it("keys by the full URL: another market is another entry", function()
      local c = client(spotify.responses { ttl = 3600 })
      assert(c:track(ID, { market = "US" }))
      assert(c:track(ID, { market = "DE" }))
      assert(c:track(ID, { market = "US" }))
      assert.equal(2, #f:log_for "/v1/tracks/")
      c:close()
    end)

    it("keys by language too: a localized answer is another entry, in each tier", function()
      local responses = spotify.responses { ttl = 3600, store = spotify.cache.memory() }
      local de = client(responses, { language = "de" })
      local fr = client(responses, { language = "fr" })
      local plain = client(responses)
      assert(de:track(ID))
      assert(fr:track(ID))
      assert(plain:track(ID))
      assert(de:track(ID))
      assert(fr:track(ID))
      local log = f:log_for "/v1/tracks/"
      assert.equal(3, #log)
      local asked = {}
      for _, r in ipairs(log) do
        asked[type(r.accept_language) == "string" and r.accept_language or "none"] = true
      end
      assert.same({ de = true, fr = true, none = true }, asked)
      assert.equal(1, de:stats().response_hits)
      assert.equal(1, fr:stats().response_hits)
      de:close()
      fr:close()
      plain:close()
    end)

    it("hands out answers a caller may change without changing another's", function()
      local c = client(spotify.responses { ttl = 3600 })
      local first = assert(c:track(ID))
      local name, album = first.name, first.album.name
      first.name, first.album.name, first.artists = "changed", "changed", nil
      local second = assert(c:track(ID))
      assert.equal(name, second.name)
      assert.equal(album, second.album.name)
      assert.is_table(second.artists)
      assert.are_not.equal(first, second)
      second.name = "again"
      assert.equal(name, assert(c:track(ID)).name)
      assert.equal(1, #f:log_for "/v1/tracks/")
      c:close()
    end)

    it("drops the least recently used answer beyond lru", function()
      local c = client(spotify.responses { ttl = 3600, lru = 2 })
      local list = ids(3)
      local a, b, d = list[1], list[2], list[3]
      assert(c:track(a))
      assert(c:track(b))
      assert(c:track(a))          -- a is now the most recent
      assert(c:track(d))          -- drops b
      assert(c:track(a))
      assert.equal(3, #f:log_for "/v1/tracks/")
      assert(c:track(b))
      assert.equal(4, #f:log_for "/v1/tracks/")
      c:close()
    end)

    it("with lru = 0 keeps nothing in the process", function()
      local c = client(spotify.responses { ttl = 3600, lru = 0 })
      assert(c:track(ID))
      assert(c:track(ID))
      assert.equal(2, #f:log_for "/v1/tracks/")
      c:close()
    end)

    it("caches a method by its ttl; 0 and unlisted methods under default = 0 never", function()
      local c = client(spotify.responses { ttl = { default = 0, track = 3600 } })
      for _ = 1, 3 do
        assert(c:track(ID))
        assert(c:album(ALBUM))
      end
      assert.equal(1, #f:log_for "/v1/tracks/")
      assert.equal(3, #f:log_for "/v1/albums/")
      c:close()
    end)

    it("without a ttl follows Spotify's Cache-Control max-age", function()
      f:faults { { path = "/v1/search", times = -1, headers = { ["Cache-Control"] = "public, max-age=300" } } }
      local c = client(spotify.responses {})
      for _ = 1, 3 do
        assert(c:search("abba"))
        assert(c:track(ID)) -- no max-age: not kept
      end
      assert.equal(1, #f:log_for "/v1/search")
      assert.equal(3, #f:log_for "/v1/tracks/")
      c:close()
    end)

    it("keeps only 200 answers", function()
      local c = client(spotify.responses { ttl = 3600 })
      for _ = 1, 2 do
        local v, err = c:track("Unknown00000000000000A")
        assert.is_nil(v)
        assert.equal("not_found", err.kind)
      end
      assert.equal(2, #f:log_for "/v1/tracks/")
      c:close()
    end)

    it("serves plural calls, started requests and pages' first GETs too", function()
      local c = client(spotify.responses { ttl = 3600 }, { batch = false })
      local list = ids(4)
      assert(c:tracks(list))
      assert.equal(4, #f:log_for "/v1/tracks/")
      local all = assert(c:tracks(list))
      assert.equal(list[3], all[3].id)
      local req = c:start("track", list[2])
      local give_up = core.now() + 5
      while not req:done() and core.now() < give_up do c:poll(0.01) end
      assert.equal(list[2], assert(req:result()).id)
      assert.equal(4, #f:log_for "/v1/tracks/")
      assert.equal(5, c:stats().response_hits)
      c:close()
    end)

    it("one object serves several clients", function()
      local r = spotify.responses { ttl = 3600 }
      local c1, c2 = client(r), client(r)
      assert(c1:track(ID))
      assert(c2:track(ID))
      assert.equal(1, #f:log_for "/v1/tracks/")
      assert.equal(1, c2:stats().response_hits)
      c1:close()
      assert(c2:track(ID)) -- a closed client takes nothing with it
      c2:close()
    end)
  end)

  describe("shared tier", function()
    local function shared_by_two(store)
      local c1 = client(spotify.responses { store = store, ttl = 3600 })
      local c2 = client(spotify.responses { store = store, ttl = 3600 })
      local a = assert(c1:track(ID))
      local b = assert(c2:track(ID))
      assert.equal(a.id, b.id)
      assert.equal(a.name, b.name)
      assert(c2:track(ID))
      assert.equal(1, #f:log_for "/v1/tracks/")
      assert.equal(1, c2:stats().response_shared_hits)
      assert.equal(1, c2:stats().response_hits)
      c1:close()
      c2:close()
    end

    it("answers from a memory store", function() shared_by_two(spotify.cache.memory()) end)

    it("answers from a Redis store", function()
      local redis = require("spec.support.redis").start()
      local ok, err = pcall(shared_by_two, spotify.cache.redis(redis:connect(), { prefix = "responses:" }))
      redis:stop()
      assert(ok, err)
    end)

    it("answers from a file store", function()
      shared_by_two(spotify.cache.file(fake.workdir() .. "/responses-" .. tostring(os.time()) .. ".json"))
    end)

    it("answers from a custom store; one that raises is a miss, never an error", function()
      local t = {}
      local custom = {
        get = function(_, k) return t[k] end,
        set = function(_, k, v) t[k] = v end,
      }
      shared_by_two(custom)
      f:reset()
      local broken = { get = function() error "down" end, set = function() error "down" end }
      local c = client(spotify.responses { store = broken, ttl = 3600, lru = 0 })
      assert(c:track(ID))
      assert(c:track(ID))
      assert.equal(2, #f:log_for "/v1/tracks/")
      assert.equal(0, c:stats().cache_errors) -- the token cache is not the one that failed
      c:close()
    end)

    it("reads entries with and without validators, and refuses a broken validator line", function()
      local store = spotify.cache.memory()
      local c = client(spotify.responses { store = store, ttl = 3600, lru = 0 })
      local key = "response:" .. f.api_base .. "/tracks/" .. ID
      local t = testing.time()
      local text = '{"id":"' .. ID .. '","name":"Planted"}'
      store:set(key, ("%.3f %.3f\n"):format(t + 60, t + 60) .. text, 60) -- as written before validators
      assert.equal("Planted", assert(c:track(ID)).name)
      store:set(key, ("%.3f %.3f %.3f\netag \"v1\"\nlm Wed, 01 Jan 2025 00:00:00 GMT\n"):format(t + 60, t + 60,
        t + 3600) .. text, 60)
      assert.equal("Planted", assert(c:track(ID)).name)
      assert.equal(0, #f:log_for "/v1/tracks/")
      store:set(key, ("%.3f %.3f %.3f\nbogus\n"):format(t + 60, t + 60, t + 3600) .. text, 60)
      assert.equal("Austerity", assert(c:track(ID)).name)
      assert.equal(1, #f:log_for "/v1/tracks/")
      c:close()
    end)

    it("ignores a stored value that is not one of its entries", function()
      local store = spotify.cache.memory()
      local c = client(spotify.responses { store = store, ttl = 3600, lru = 0 })
      store:set("response:" .. f.api_base .. "/tracks/" .. ID, "garbage", 60)
      assert.equal(ID, assert(c:track(ID)).id)
      assert.equal(1, #f:log_for "/v1/tracks/")
      c:close()
    end)
  end)

  describe("batch answers kept per item", function()
    -- The IDs a batch GET of the log asked for.
    local function asked_ids(e)
      local list = {}
      for id in (e.query:match "ids=([^&]*)" or ""):gmatch "[^,]+" do list[#list + 1] = id end
      return list
    end

    it("tracks(50) then track() for each: one request in all", function()
      local c = client(spotify.responses { ttl = 3600 })
      local list = ids(50)
      assert(c:access_token())
      local mark = #f:log()
      local all = assert(c:tracks(list))
      for i = 1, 50 do assert.equal(list[i], all[i].id) end
      for i = 1, 50 do assert.equal(list[i], assert(c:track(list[i])).id) end
      assert.equal(1, #f:log_for("/v1/", mark))
      assert.equal(50, c:stats().response_hits)
      c:close()
    end)

    it("batches that ride on one answered from another process's store each get their own order", function()
      local store = spotify.cache.memory()
      local c = client(spotify.responses { store = store, ttl = 3600 })
      local a, b, d = unpack(ids(3, "R"))
      assert(c:track(a))
      assert(c:track(d))
      -- another process asks for b: it holds the store's lock on that batch
      local key = "response:" .. f.api_base .. "/tracks?ids=" .. b
      assert.is_true(store:lock(key .. ":lock", 30))
      local r1 = c:start("tracks", { a, b })
      local r2 = c:start("tracks", { b, d }) -- the same batch (b) as r1's: it rides on r1's
      for _ = 1, 5 do c:poll(0) end
      -- ... and stores its answer to b, then lets go
      local other = client()
      local item = require("cjson").encode((assert(other:track(b))))
      local now = testing.time()
      store:set(key, ("%.3f %.3f\n"):format(now + 3600, now + 3600) .. '{"tracks":[' .. item .. "]}", 3600)
      store:unlock(key .. ":lock")
      local deadline = os.time() + 30
      while not (r1:done() and r2:done()) and os.time() < deadline do c:poll(0.01) end
      local one, two = assert(r1:result()), assert(r2:result())
      assert.same({ a, b }, { one[1].id, one[2].id })
      assert.same({ b, d }, { two[1].id, two[2].id })
      c:close()
      other:close()
    end)

    it("asks only for the IDs not held, and answers in the caller's order", function()
      local c = client(spotify.responses { ttl = 3600 })
      local list = ids(50)
      for i = 1, 30 do assert(c:track(list[i])) end
      local mark = #f:log()
      local all = assert(c:tracks(list))
      for i = 1, 50 do assert.equal(list[i], all[i].id) end
      local log = f:log_for("/v1/", mark)
      assert.equal(1, #log)
      assert.equal("/v1/tracks", log[1].path)
      assert.same({ unpack(list, 31, 50) }, asked_ids(log[1]))
      -- reversed, with an unknown ID and a repeat: only the unknown one is asked
      mark = #f:log()
      local mixed = {}
      for i = 50, 1, -1 do mixed[#mixed + 1] = list[i] end
      mixed[25] = "Unknown000000000000000"
      mixed[26] = list[50]
      all = assert(c:tracks(mixed))
      log = f:log_for("/v1/", mark)
      assert.equal(1, #log)
      assert.same({ "Unknown000000000000000" }, asked_ids(log[1]))
      for i = 1, 50 do
        if i == 25 then
          assert.equal(spotify.null, all[i])
        else
          assert.equal(mixed[i], all[i].id)
        end
      end
      -- a not found ID is never kept
      local _, err = c:track("Unknown000000000000000")
      assert.equal("not_found", err.kind)
      assert.equal(2, #f:log_for("/v1/", mark))
      c:close()
    end)

    it("keeps items under their single lookup's key: market and language included", function()
      local c = client(spotify.responses { ttl = 3600 }, { market = "DE", language = "de" })
      local list = ids(5)
      assert(c:tracks(list, { market = "FR" }))
      local mark = #f:log()
      assert(c:track(list[2], { market = "FR" }))
      assert.equal(0, #f:log_for("/v1/", mark))
      assert(c:track(list[2])) -- another market: another answer
      assert.equal(1, #f:log_for("/v1/", mark))
      local log = f:log_for("/v1/", mark)
      assert.equal("de", log[1].accept_language)
      c:close()
    end)

    it("goes through the shared tier: another process's items answer a plural call", function()
      local store = spotify.cache.memory()
      local c1 = client(spotify.responses { store = store, ttl = 3600 })
      local c2 = client(spotify.responses { store = store, ttl = 3600 })
      local list = ids(40)
      local first = {}
      for i = 1, 30 do first[i] = list[i] end
      assert(c1:tracks(first))
      assert(c2:access_token())
      local mark = #f:log()
      assert.equal(list[7], assert(c2:track(list[7])).id)
      local all = assert(c2:tracks(list))
      for i = 1, 40 do assert.equal(list[i], all[i].id) end
      local log = f:log_for("/v1/", mark)
      assert.equal(1, #log)
      assert.equal(10, #asked_ids(log[1]))
      assert.equal(30, c2:stats().response_shared_hits)
      c1:close()
      c2:close()
    end)

    it("composes with batch_window: a window asks only for what is not held", function()
      local c = client(spotify.responses { ttl = 3600 }, { batch_window = 0.05 })
      local list = ids(50)
      for i = 1, 30 do assert(c:track(list[i])) end
      local mark = #f:log()
      local reqs = {}
      for i = 1, 50 do reqs[i] = c:start("tracks", { list[i] }) end
      local give_up = core.now() + 10
      while c:poll(0.01) > 0 and core.now() < give_up do end
      for i = 1, 50 do assert.equal(list[i], assert(reqs[i]:result())[1].id) end
      local log = f:log_for("/v1/", mark)
      local n = 0
      for _, e in ipairs(log) do n = n + #asked_ids(e) end
      assert.equal(20, n)
      c:close()
    end)

    it("refuses a batch answer it cannot split, and keeps none of it", function()
      local c = client(spotify.responses { ttl = 3600 })
      local list = ids(3)
      assert(c:track(list[1]))
      f:faults { { path = "/v1/tracks", query_contains = "ids=", action = "bad_json" } }
      local v, err = c:tracks(list)
      assert.is_nil(v)
      assert.equal("decode", err.kind)
      local mark = #f:log()
      assert(c:track(list[2]))
      assert.equal(1, #f:log_for("/v1/", mark))
      c:close()
    end)
  end)

  describe("stale_if_error", function()
    local clock
    setup(function() clock = require("spec.support.virtual_clock").install() end)
    teardown(function() testing.virtual_clock(false) end)

    local function expired(responses)
      local c = client(responses)
      local first = assert(c:track(ID))
      core.sleep(120) -- the virtual clock: past the ttl
      return c, first
    end

    for _, fault in ipairs {
      { status = 500 }, { status = 503 }, { action = "truncate" },
      { status = 429, headers = { ["Retry-After"] = "1" } },
    } do
      it("lets an expired answer stand in for " .. (fault.status or fault.action), function()
        clock.reset()
        local c, first = expired(spotify.responses { ttl = 60, stale_if_error = 3600 })
        fault.path = "/v1/tracks"
        f:faults { fault }
        local t, err = c:track(ID)
        assert.is_nil(err)
        assert.equal(first.name, t.name)
        assert.equal(1, c:stats().response_stale)
        assert.equal(2, #f:log_for "/v1/tracks/")
        c:close()
      end)
    end

    it("fails as usual without stale_if_error, or once the answer is too old", function()
      local c = expired(spotify.responses { ttl = 60 })
      f:faults { { path = "/v1/tracks", status = 500 } }
      local t, err = c:track(ID)
      assert.is_nil(t)
      assert.equal("server", err.kind)
      c:close()
      local c2 = expired(spotify.responses { ttl = 60, stale_if_error = 30 })
      f:faults { { path = "/v1/tracks", status = 500 } }
      t, err = c2:track(ID)
      assert.is_nil(t)
      assert.equal("server", err.kind)
      assert.equal(0, c2:stats().response_stale)
      c2:close()
    end)

    it("stands in while an earlier 429 holds the client, without waiting", function()
      clock.reset()
      local c = expired(spotify.responses { ttl = 60, stale_if_error = 3600 })
      local other = "0TnOYISbd1XYRBk9myaseg"
      f:faults { { path = "/v1/artists", status = 429, headers = { ["Retry-After"] = "30" } } }
      local _, err = c:artist(other)
      assert.equal("rate_limited", err.kind)
      clock.reset()
      local t, terr = c:track(ID)
      assert.is_nil(terr)
      assert.equal(ID, t.id)
      assert.equal(1, c:stats().response_stale)
      assert.equal(0, #clock.waits) -- no wait for the penalty
      assert.equal(1, #f:log_for "/v1/tracks/")
      c:close()
    end)

    it("lets expired items stand in for a failed batch GET", function()
      local c = client(spotify.responses { ttl = 60, stale_if_error = 3600 })
      local list = ids(3)
      assert(c:tracks(list))
      core.sleep(120)
      f:faults { { path = "/v1/tracks", status = 500, times = -1 } }
      local all, err = c:tracks(list)
      assert.is_nil(err)
      for i = 1, 3 do assert.equal(list[i], all[i].id) end
      assert.equal(1, c:stats().response_stale)
      c:close()
    end)

    it("stands in for the first QUOTA_EXCEEDED 429, which then holds the client", function()
      clock.reset()
      local c, first = expired(spotify.responses { ttl = 60, stale_if_error = 3600 })
      f:faults { { path = "/v1/tracks", status = 429, reason = "QUOTA_EXCEEDED" } }
      local t, err = c:track(ID)
      assert.is_nil(err)
      assert.equal(first.name, t.name)
      assert.equal(1, c:stats().response_stale)
      assert.equal(2, #f:log_for "/v1/tracks/")
      -- the spent quota still holds the client: another call asks nothing
      local other = "0TnOYISbd1XYRBk9myaseg"
      local _, aerr = c:artist(other)
      assert.equal("rate_limited", aerr.kind)
      assert.equal("QUOTA_EXCEEDED", aerr.reason)
      assert.equal(0, #f:log_for "/v1/artists/")
      t = assert(c:track(ID)) -- and the stale answer stands in again
      assert.equal(first.name, t.name)
      assert.equal(2, #f:log_for "/v1/tracks/")
      c:close()
    end)

    it("never stands in for a 404", function()
      local c = expired(spotify.responses { ttl = 60, stale_if_error = 3600 })
      f:faults { { path = "/v1/tracks", status = 404 } }
      local t, err = c:track(ID)
      assert.is_nil(t)
      assert.equal("not_found", err.kind)
      c:close()
    end)

    it("renews an expired answer once Spotify answers again", function()
      local c = expired(spotify.responses { ttl = 60, stale_if_error = 3600 })
      assert(c:track(ID))
      assert(c:track(ID))
      assert.equal(2, #f:log_for "/v1/tracks/")
      c:close()
    end)
  end)

  describe("conditional requests", function()
    setup(function() require("spec.support.virtual_clock").install() end)
    teardown(function() testing.virtual_clock(false) end)

    it("asks about an expired answer with If-None-Match; a 304 renews it and hands it out", function()
      local c = client(spotify.responses { ttl = 60 }, { budget_key = "reval-app" })
      local first = assert(c:track(ID))
      core.sleep(120) -- the virtual clock: past the ttl
      local mark = #f:log()
      local t = assert(c:track(ID))
      assert.same(first, t)
      local log = f:log_for("/v1/", mark)
      assert.equal(1, #log)
      assert.equal(304, log[1].status)
      assert.matches('^"%x+"$', log[1].if_none_match)
      assert.equal("Wed, 01 Jan 2025 00:00:00 GMT", log[1].if_modified_since)
      assert.equal(1, c:stats().response_revalidated)
      t.name = "changed" -- a copy: the kept answer is not
      assert.equal(first.name, assert(c:track(ID)).name) -- fresh again: no request
      assert.equal(1, #f:log_for("/v1/", mark))
      assert.matches('spotify_response_hits_total{app="reval%-app",tier="revalidated"} 1\n',
        spotify.prometheus(), 1, false)
      c:close()
    end)

    it("asks with the validators of the shared tier's entry, and renews it there", function()
      local store = spotify.cache.memory()
      local c1 = client(spotify.responses { store = store, ttl = 60, lru = 0 })
      local c2 = client(spotify.responses { store = store, ttl = 60, lru = 0 })
      assert(c1:track(ID))
      core.sleep(120)
      assert(c2:access_token())
      local mark = #f:log()
      assert.equal(ID, assert(c2:track(ID)).id)
      assert.equal(1, c2:stats().response_revalidated)
      assert.equal(ID, assert(c1:track(ID)).id) -- renewed in the store: no request
      local log = f:log_for("/v1/", mark)
      assert.equal(1, #log)
      assert.equal(304, log[1].status)
      assert.equal(1, c1:stats().response_shared_hits)
      c1:close()
      c2:close()
    end)

    it("a 304 renews the answer it was asked about, not another text this process kept", function()
      local store = spotify.cache.memory()
      local key = "response:" .. f.api_base .. "/tracks/" .. ID
      -- the store's entry as Spotify answered it: its times, validators, text
      local c0 = client(spotify.responses { store = store, ttl = 60, lru = 0 })
      assert(c0:track(ID))
      local entry = assert(store:get(key))
      local rest = entry:sub(entry:find("\n", 1, true) + 1) -- past the times
      local at = rest:find("{", 1, true)
      local validators, text = rest:sub(1, at - 1), rest:sub(at)
      assert.matches("^etag ", validators)
      local function named(name)
        local t = require("cjson").decode(text)
        t.name = name
        return require("cjson").encode(t)
      end
      -- this process keeps one text, copied from the store with no validator ...
      local now = testing.time()
      store:set(key, ("%.3f %.3f\n"):format(now + 60, now + 1000) .. named "kept here", 1000)
      local c = client(spotify.responses { store = store, ttl = 60, stale_if_error = 1000 })
      assert.equal("kept here", assert(c:track(ID)).name)
      core.sleep(120) -- both expired
      -- ... while the store now holds another, with Spotify's validators
      now = testing.time()
      store:set(key, ("%.3f %.3f %.3f\n"):format(now - 10, now + 1000, now + 1000) .. validators
        .. named "asked about", 1000)
      local mark = #f:log()
      assert.equal("asked about", assert(c:track(ID)).name)
      assert.equal(304, f:log_for("/v1/", mark)[1].status)
      assert.equal("asked about", assert(c:track(ID)).name) -- and that is what is fresh now
      c0:close()
      c:close()
    end)

    it("asks unconditionally where the answer had no validator", function()
      f:config { etags = false }
      local c = client(spotify.responses { ttl = 60 })
      assert(c:track(ID))
      core.sleep(120)
      local mark = #f:log()
      assert(c:track(ID))
      local log = f:log_for("/v1/", mark)
      assert.equal(1, #log)
      assert.equal(200, log[1].status)
      assert.equal(cjson_null, log[1].if_none_match)
      assert.equal(0, c:stats().response_revalidated)
      c:close()
    end)

    it("takes a 304 to a request that named no validator as a bad answer", function()
      local c = client(spotify.responses { ttl = 60 })
      f:faults { { path = "/v1/tracks", status = 304, body = "" } }
      local t, err = c:track(ID)
      assert.is_nil(t)
      assert.equal("decode", err.kind)
      assert.equal(304, err.status)
      assert.equal(ID, assert(c:track(ID)).id) -- nothing was kept
      c:close()
      local plain = client(nil)
      f:faults { { path = "/v1/tracks", status = 304, body = "" } }
      local _, perr = plain:track(ID)
      assert.equal("decode", perr.kind)
      plain:close()
    end)
  end)
  describe("stale_while_revalidate", function()
    setup(function() require("spec.support.virtual_clock").install() end)
    teardown(function() testing.virtual_clock(false) end)
    local OTHER = "0TnOYISbd1XYRBk9myaseg"

    it("raises naming the option", function()
      for _, bad in ipairs { -1, "x", 0 / 0, math.huge, {} } do
        local ok, err = pcall(spotify.responses, { stale_while_revalidate = bad })
        assert.is_false(ok)
        assert.matches("stale_while_revalidate", tostring(err))
      end
      assert.equal("userdata", type(spotify.responses { stale_while_revalidate = 0 }))
    end)

    it("hands out an answer expired less than s ago at once; the next call renews it once", function()
      local c = client(spotify.responses { ttl = 60, stale_while_revalidate = 300 })
      local first = assert(c:track(ID))
      core.sleep(120) -- the virtual clock: expired 60 s ago
      local mark = #f:log()
      local t = assert(c:track(ID))
      assert.same(first, t)
      assert.equal(0, #f:log_for("/v1/", mark)) -- no request for it
      assert.equal(1, c:stats().response_stale)
      assert(c:artist(OTHER)) -- the next call renews it first
      assert.equal(1, #f:log_for("/v1/tracks/", mark))
      local hits = c:stats().response_hits
      assert.equal(ID, assert(c:track(ID)).id) -- fresh again
      assert.equal(hits + 1, c:stats().response_hits)
      assert.equal(1, #f:log_for("/v1/tracks/", mark))
      assert.equal(1, c:stats().response_stale)
      c:close()
    end)

    it("is an ordinary miss beyond s, and off by default", function()
      for _, r in ipairs { spotify.responses { ttl = 60, stale_while_revalidate = 30 },
        spotify.responses { ttl = 60 } } do
        local c = client(r)
        assert(c:track(ID))
        core.sleep(120)
        local mark = #f:log()
        assert.equal(ID, assert(c:track(ID)).id)
        assert.equal(1, #f:log_for("/v1/tracks/", mark)) -- asked at once
        assert.equal(0, c:stats().response_stale)
        assert(c:artist(OTHER))
        assert.equal(1, #f:log_for("/v1/tracks/", mark)) -- and nothing renewed after
        c:close()
      end
    end)

    it("hands out the shared tier's expired answer; one renewal refreshes it for every client", function()
      local store = spotify.cache.memory()
      local function opts()
        return spotify.responses { store = store, ttl = 60, lru = 0, stale_while_revalidate = 300 }
      end
      local c1, c2 = client(opts()), client(opts())
      local first = assert(c1:track(ID))
      core.sleep(120)
      assert(c2:access_token())
      local mark = #f:log()
      assert.same(first, assert(c2:track(ID)))
      assert.same(first, assert(c1:track(ID)))
      assert.equal(0, #f:log_for("/v1/", mark))
      assert.equal(1, c2:stats().response_stale)
      assert(c2:artist(OTHER)) -- c2 renews it in the store
      assert.equal(1, #f:log_for("/v1/tracks/", mark))
      assert(c1:artist(OTHER)) -- c1's renewal finds it fresh there: no request
      assert.equal(1, #f:log_for("/v1/tracks/", mark))
      local shared = c1:stats().response_shared_hits
      assert.equal(ID, assert(c1:track(ID)).id)
      assert.equal(shared + 1, c1:stats().response_shared_hits)
      assert.equal(1, #f:log_for("/v1/tracks/", mark))
      c1:close()
      c2:close()
    end)

    it("hands out a batch call's expired items at once; each is renewed once by its single lookup", function()
      local c = client(spotify.responses { ttl = 60, stale_while_revalidate = 300 })
      local list = ids(3)
      local first = assert(c:tracks(list))
      core.sleep(120)
      local mark = #f:log()
      assert.same(first, assert(c:tracks(list)))
      assert.equal(0, #f:log_for("/v1/", mark))
      assert.equal(3, c:stats().response_stale)
      assert(c:artist(OTHER)) -- the next call renews the three
      local renewed = f:log_for("/v1/tracks", mark)
      assert.equal(3, #renewed)
      local seen = {}
      for _, e in ipairs(renewed) do seen[e.path] = true end
      for _, id in ipairs(list) do assert.is_true(seen["/v1/tracks/" .. id], id) end
      assert.same(first, assert(c:tracks(list))) -- fresh again
      assert.equal(3, #f:log_for("/v1/tracks", mark))
      assert.equal(3, c:stats().response_stale)
      c:close()
    end)

    it("hands out a batch's expired items from the shared tier; the store keeps them that long", function()
      local store = spotify.cache.memory()
      local function opts()
        return spotify.responses { store = store, ttl = 60, lru = 0, stale_while_revalidate = 300 }
      end
      local c1, c2 = client(opts()), client(opts())
      local list = ids(3)
      local first = assert(c1:tracks(list))
      core.sleep(120) -- past the ttl, and past what stale_if_error alone would keep
      assert(c2:access_token())
      local mark = #f:log()
      assert.same(first, assert(c2:tracks(list)))
      assert.equal(0, #f:log_for("/v1/", mark))
      assert.equal(3, c2:stats().response_stale)
      c1:close()
      c2:close()
    end)

    it("renews from started requests on the next poll, once per key", function()
      local answered = 0 -- renewals whose answer the client has taken in
      local c = client(spotify.responses { ttl = 60, stale_while_revalidate = 300 }, {
        on_request = function(e) if e.status and e.url:find("/tracks/", 1, true) then answered = answered + 1 end end,
      })
      local first = assert(c:track(ID))
      answered = 0
      core.sleep(120)
      local mark = #f:log()
      local reqs = {}
      for i = 1, 5 do reqs[i] = c:start("track", ID) end
      for _ = 1, 100 do if c:poll(0.05) == 0 then break end end
      for i = 1, 5 do
        local t, err = reqs[i]:result()
        assert.is_nil(err)
        assert.same(first, t)
      end
      assert.equal(5, c:stats().response_stale)
      local deadline = os.time() + 20
      while answered == 0 and os.time() < deadline do c:poll(0.05) end
      for _ = 1, 10 do c:poll(0.01) end
      assert.equal(1, answered)
      assert.equal(1, #f:log_for("/v1/tracks/", mark))
      local hits = c:stats().response_hits
      assert.equal(ID, assert(c:track(ID)).id)
      assert.equal(hits + 1, c:stats().response_hits)
      assert.equal(1, #f:log_for("/v1/tracks/", mark))
      c:close()
    end)
  end)
end)
