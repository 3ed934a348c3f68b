-- What the response cache keeps, and for whom: Cache-Control no-store is
-- never kept and private never reaches the shared tier; answers got with a
-- caller's own access_token are kept under a digest of that token, so no
-- other token's holder (another user, the app) ever sees them. Counts come
-- from the fake's log; the shared tier is a Lua table that records writes.
local spotify = require "spotify"
local fake = require "spec.support.fake"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

-- A store over a plain table; `sets` lists the keys written.
local function table_store()
  local data, sets = {}, {}
  return {
    sets = sets,
    get = function(_, k) return data[k] end,
    set = function(_, k, v) sets[#sets + 1] = k; data[k] = v end,
  }
end

local function answer_sets(store)
  local n = 0
  for _, k in ipairs(store.sets) do
    if k:sub(1, #"response:") == "response:" then n = n + 1 end
  end
  return n
end

describe("privacy of kept answers", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  -- A token of its own from the fake, as a user's token would be.
  local function user_token()
    local app = spotify.client(fake.client_opts(f))
    local token = assert(app:access_token())
    app:close()
    return token
  end

  local function user(token, responses)
    return spotify.client { access_token = token, api_base = f.api_base, responses = responses,
      max_retries = 0 }
  end

  local function app_client(responses)
    return spotify.client(fake.client_opts(f, { responses = responses, max_retries = 0 }))
  end

  describe("two access_token clients on one responses object", function()
    it("never see each other's private answers (/me, as Spotify sends it)", function()
      local store = table_store()
      local responses = spotify.responses { ttl = 3600, store = store }
      local t1, t2 = user_token(), user_token()
      local u1, u2 = user(t1, responses), user(t2, responses)
      local id1 = assert(u1:get "/me").id
      local id2 = assert(u2:get "/me").id
      assert.are_not.equal(id1, id2)
      for _ = 1, 3 do
        assert.equal(id1, assert(u1:get "/me").id)
        assert.equal(id2, assert(u2:get "/me").id)
      end
      -- each token asked once, then its own answer from the process tier
      assert.equal(2, #f:log_for "/v1/me")
      assert.equal(3, u1:stats().response_hits)
      -- private: nothing went to the shared tier
      assert.equal(0, answer_sets(store))
      u1:close()
      u2:close()
    end)

    it("never see each other's answers in either tier, private or not", function()
      f:faults { { path = "/v1/me", headers = { ["Cache-Control"] = "max-age=3600" }, times = -1 } }
      local store = table_store()
      local responses = spotify.responses { ttl = 3600, store = store }
      local t1, t2 = user_token(), user_token()
      local u1, u2 = user(t1, responses), user(t2, responses)
      local id1 = assert(u1:get "/me").id
      local id2 = assert(u2:get "/me").id
      assert.are_not.equal(id1, id2)
      assert.equal(2, answer_sets(store)) -- not private: kept in the shared tier, once per token
      -- other processes (other responses objects over the store): each token
      -- finds its own answer there, the app token none of them
      local again1 = user(t1, spotify.responses { ttl = 3600, store = store })
      local again2 = user(t2, spotify.responses { ttl = 3600, store = store })
      assert.equal(id2, assert(again2:get "/me").id)
      assert.equal(id1, assert(again1:get "/me").id)
      assert.equal(1, again1:stats().response_shared_hits)
      assert.equal(2, #f:log_for "/v1/me")
      local app = app_client(spotify.responses { ttl = 3600, store = store })
      local app_me = assert(app:get "/me").id
      assert.are_not.equal(id1, app_me)
      assert.are_not.equal(id2, app_me)
      assert.equal(3, #f:log_for "/v1/me")
      -- a catalog answer too is kept per token: 0 answers crossed
      assert(u1:track(ID))
      assert(u2:track(ID))
      assert(app:track(ID))
      assert.equal(3, #f:log_for "/v1/tracks/")
      assert(u1:track(ID))
      assert(again2:track(ID))
      assert.equal(3, #f:log_for "/v1/tracks/")
      for _, c in ipairs { u1, u2, again1, again2, app } do c:close() end
    end)
  end)

  describe("Cache-Control", function()
    it("private keeps an app token's answer in the process tier only", function()
      f:faults { { path = "/v1/tracks/", headers = { ["Cache-Control"] = "private, max-age=3600" }, times = -1 } }
      local store = table_store()
      local a = app_client(spotify.responses { ttl = { track = 3600 }, store = store })
      assert(a:track(ID))
      assert(a:track(ID))
      assert.equal(1, #f:log_for "/v1/tracks/")
      assert.equal(1, a:stats().response_hits)
      assert.equal(0, answer_sets(store))
      local b = app_client(spotify.responses { ttl = { track = 3600 }, store = store })
      assert(b:track(ID))
      assert.equal(2, #f:log_for "/v1/tracks/")
      a:close()
      b:close()
    end)

    it("no-store is never kept, whatever ttl the method has", function()
      f:faults { { path = "/v1/tracks/", headers = { ["Cache-Control"] = "no-store" }, times = -1 } }
      local store = table_store()
      local a = app_client(spotify.responses { ttl = { track = 3600 }, store = store })
      assert(a:track(ID))
      assert(a:track(ID))
      assert.equal(2, #f:log_for "/v1/tracks/")
      assert.equal(0, a:stats().response_hits)
      assert.equal(0, answer_sets(store))
      a:close()
    end)

    it("an app token's answer without either goes to both tiers", function()
      local store = table_store()
      local a = app_client(spotify.responses { ttl = { track = 3600 }, store = store })
      assert(a:track(ID))
      assert.equal(1, answer_sets(store))
      local b = app_client(spotify.responses { ttl = { track = 3600 }, store = store })
      assert(b:track(ID))
      assert.equal(1, #f:log_for "/v1/tracks/")
      assert.equal(1, b:stats().response_shared_hits)
      a:close()
      b:close()
    end)
  end)
end)
