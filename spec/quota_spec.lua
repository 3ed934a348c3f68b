-- A quota-aware rate limit: Spotify's error.reason on errors, a spent
-- quota (429 QUOTA_EXCEEDED) failing at once and shared through the cache,
-- budget_key, scopes, and cache keys that name the credentials by digest,
-- one namespace per kind of entry.
local spotify = require "spotify"
local fake = require "spec.support.fake"
local keys = require "spec.support.keys"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

-- A 429 saying the quota is spent; Retry-After only when `after` is given.
local function quota_fault(after, times)
  return { path = "/v1/", status = 429, reason = "QUOTA_EXCEEDED", times = times or 1,
    headers = after and { ["Retry-After"] = tostring(after) } or nil }
end

-- A Lua cache over one plain table: every kind of entry in one key space,
-- as Redis or a shared dict has it; `used` records each key it is asked for.
local function flat_cache()
  local store, used = {}, {}
  local cache = { store = store, used = used }
  function cache.get(_, k) used[k] = true; return store[k] end
  function cache.set(_, k, v) used[k] = true; store[k] = v end
  function cache.lock(_, k)
    used[k] = true
    if store[k] then return false end
    store[k] = "locked"
    return true
  end
  function cache.unlock(_, k) store[k] = nil end
  function cache.incr(_, k, d)
    used[k] = true
    store[k] = (tonumber(store[k]) or 0) + d
    return store[k]
  end
  return cache
end

describe("quota-aware rate limit", function()
  local f
  setup(function()
    f = fake.start {}
  end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  local function client(extra)
    return spotify.client(fake.client_opts(f, extra))
  end

  describe("err.reason", function()
    it("carries Spotify's error.reason on any error that has one", function()
      f:faults { { path = "/v1/", status = 403, reason = "PREMIUM_REQUIRED", fixture = "error_403_forbidden.json" } }
      local c = client()
      local _, err = c:track(ID)
      assert.equal("forbidden", err.kind)
      assert.equal("PREMIUM_REQUIRED", err.reason)
      assert.equal("Forbidden", err.message)
    end)

    it("is nil on an error without one", function()
      f:faults { { path = "/v1/", status = 404, fixture = "error_404_non_existing_id.json" } }
      local _, err = client():track(ID)
      assert.equal("not_found", err.kind)
      assert.is_nil(err.reason)
    end)

    it("is nil where the token endpoint names an OAuth error code ({\"error\": \"invalid_client\"})", function()
      local _, err = client({ client_secret = "wrong-secret" }):track(ID)
      assert.equal("auth", err.kind)
      assert.is_nil(err.reason)
    end)
  end)

  describe("QUOTA_EXCEEDED", function()
    it("fails at once with reason and retry_after, never retried nor waited for", function()
      f:faults { quota_fault(5, -1) }
      local c = client { max_retry_after = 60, max_retries = 3 }
      local _, err = c:track(ID)
      assert.equal("rate_limited", err.kind)
      assert.equal(429, err.status)
      assert.equal("QUOTA_EXCEEDED", err.reason)
      assert.equal(5, err.retry_after)
      assert.equal(1, #f:log_for "/v1/", "asked again")
      local s = c:stats()
      assert.equal(0, s.retries)
      assert.equal(0, s.rate_limited_waits)
    end)

    it("takes 3600 s as its retry_after when the answer has no Retry-After", function()
      f:faults { quota_fault(nil) }
      local _, err = client():track(ID)
      assert.equal("QUOTA_EXCEEDED", err.reason)
      assert.equal(3600, err.retry_after)
    end)

    it("holds the client's next calls without a request", function()
      f:faults { quota_fault(60) }
      local c = client()
      assert.is_nil(c:track(ID))
      local _, err = c:track(ID)
      assert.equal("rate_limited", err.kind)
      assert.equal("QUOTA_EXCEEDED", err.reason)
      assert.is_true(err.retry_after > 58 and err.retry_after <= 60, tostring(err.retry_after))
      assert.equal(1, #f:log_for "/v1/")
      assert.equal(0, c:stats().rate_limited_waits)
    end)

    for _, kind in ipairs { "memory", "flat" } do
      it("is shared through the cache (" .. kind .. "): a second client fails at once, making no request", function()
        f:faults { quota_fault(30) }
        local cache = kind == "memory" and spotify.cache.memory() or flat_cache()
        local first = client { cache = cache }
        assert.is_nil(first:track(ID))
        local second = client { cache = cache, max_retry_after = 3600, rate_limit = { requests = 100, window = 30 } }
        local _, err = second:track(ID)
        assert.equal("rate_limited", err.kind)
        assert.equal("QUOTA_EXCEEDED", err.reason)
        assert.is_true(err.retry_after > 28 and err.retry_after <= 30, tostring(err.retry_after))
        assert.equal(1, #f:log_for "/v1/")
        assert.equal(0, second:stats().rate_limited_waits)
      end)
    end

    it("is told to the CLI's user in one line: what happened and when to try again", function()
      f:faults { quota_fault(5400) }
      local lua = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")
      local p = assert(io.popen(("env SPOTIFY_CLIENT_ID=test-id SPOTIFY_CLIENT_SECRET=test-secret "
        .. "SPOTIFY_API_BASE='%s' SPOTIFY_TOKEN_URL='%s' SPOTIFY_TOKEN_CACHE= SPOTIFY_ACCESS_TOKEN= "
        .. "%s bin/spotify track %s 2>&1 >/dev/null"):format(f.api_base, f.token_url, lua, ID)))
      local out = p:read "*a"
      p:close()
      local lines = {}
      for l in out:gmatch "[^\n]+" do lines[#lines + 1] = l end
      assert.equal(1, #lines, out)
      assert.matches("quota is used up %(QUOTA_EXCEEDED%); try again after %d%d:%d%d %(in 1 h 30 min%)$", lines[1])
    end)
  end)

  describe("budget_key", function()
    it("two client IDs with one budget_key share a penalty", function()
      f:config { credentials = { ["test-id"] = "test-secret", other = "other-secret" } }
      f:faults { { path = "/v1/", status = 429, headers = { ["Retry-After"] = "30" }, times = 1 } }
      local cache = spotify.cache.memory()
      local a = client { cache = cache, budget_key = "developer-1", max_retries = 0 }
      local _, err = a:track(ID)
      assert.equal("rate_limited", err.kind)
      local b = client { cache = cache, budget_key = "developer-1", client_id = "other",
        client_secret = "other-secret", max_retry_after = 5 }
      _, err = b:track(ID)
      assert.equal("rate_limited", err.kind)
      assert.is_true(err.retry_after > 28, tostring(err.retry_after))
      assert.equal(1, #f:log_for "/v1/", "the second app asked during the shared penalty")
      -- another budget is not held
      local other = client { cache = cache, client_id = "other", client_secret = "other-secret" }
      assert(other:track(ID))
    end)

    it("two client IDs with one budget_key share a pacing budget", function()
      f:config { credentials = { ["test-id"] = "test-secret", other = "other-secret" } }
      local cache = spotify.cache.memory()
      local budget = { requests = 2, window = 3600 }
      local a = client { cache = cache, budget_key = "developer-1", rate_limit = budget }
      local b = client { cache = cache, budget_key = "developer-1", rate_limit = budget, deadline = 5,
        client_id = "other", client_secret = "other-secret" }
      assert(a:track(ID))
      assert(a:track(ID))
      local _, err = b:track(ID)
      assert.equal("rate_limited", err.kind)
      assert.matches("rate_limit budget", err.message)
      assert.equal(2, #f:log_for "/v1/")
    end)

    it("keeps the penalty and the pacing under the budget key, the token under the credentials", function()
      local cache = flat_cache()
      local c = client { cache = cache, budget_key = "developer-1", rate_limit = { requests = 5, window = 1 } }
      assert(c:track(ID))
      local token = keys.of(f)
      assert.truthy(cache.store[token])
      assert.truthy(cache.used[keys.penalty "developer-1"])
      assert.truthy(cache.used[keys.pace "developer-1" .. ":n"])
      assert.is_nil(cache.used[keys.penalty "test-id"])
    end)
  end)

  describe("cache keys", function()
    it("a client with the right ID and a wrong secret never gets the app's token from the cache", function()
      local cache = spotify.cache.memory()
      local app = client { cache = cache }
      assert(app:access_token())
      local intruder = client { cache = cache, client_secret = "wrong" }
      local tok, err = intruder:access_token()
      assert.is_nil(tok)
      assert.equal("auth", err.kind)
      assert.equal(2, #f:log_for "/api/token", "the token endpoint was not asked")
      assert.equal(0, intruder:stats().cache_hits)
    end)

    it("name no secret: the token's key is a SHA-256 of the credentials", function()
      local cache = flat_cache()
      assert(client({ cache = cache }):track(ID))
      for k in pairs(cache.used) do
        assert.falsy(k:find("test-secret", 1, true), k)
      end
      local digest = require("spotify.core").testing().digest("test-id\0test-secret\0" .. f.token_url .. "\0\0")
      assert.truthy(cache.store["token:{" .. digest .. "}"])
    end)

    it("a client ID such as \"APP_C:lock\" cannot reach APP_C's lock, penalty or pacing", function()
      -- Basic auth splits at the first colon: "APP_C:lock" with "s2" reads as
      -- APP_C with "lock:s2", so the fake accepts both clients.
      f:config { credentials = { APP_C = "lock:s2" } }
      local cache = flat_cache()
      local budget = { requests = 5, window = 1 }
      local used = {}
      for _, id in ipairs { "APP_C:lock", "APP_C" } do
        for k in pairs(cache.used) do cache.used[k] = nil end
        local c = client { cache = cache, client_id = id, client_secret = id == "APP_C" and "lock:s2" or "s2",
          rate_limit = budget, max_retry_after = 0, timeout = 2 }
        assert(c:track(ID))
        assert.equal(1, c:stats().token_fetches, id .. " did not fetch its own token")
        assert.equal(0, c:stats().rate_limited_waits, id .. " waited")
        for k in pairs(cache.used) do
          assert.is_nil(used[k], ("%s used %s, a key of another client"):format(id, k))
        end
        for k in pairs(cache.used) do used[k] = id end
      end
    end)
  end)

  describe("scopes", function()
    it("are sent space-joined as `scope` in the token request, form-encoded", function()
      local c = client { scopes = { "user-read-email", "playlist-read-private" } }
      assert(c:access_token())
      assert.equal("grant_type=client_credentials&scope=user-read-email%20playlist-read-private",
        f:log_for("/api/token")[1].body)
    end)

    it("are part of the token's key: a token for other scopes is not handed over", function()
      local cache = spotify.cache.memory()
      assert(client({ cache = cache, scopes = { "a" } }):access_token())
      assert(client({ cache = cache, scopes = { "b" } }):access_token())
      assert.equal(2, #f:log_for "/api/token")
      assert(client({ cache = cache, scopes = { "a" } }):access_token())
      assert.equal(2, #f:log_for "/api/token")
    end)

    it("are checked: a list of non-empty scope strings", function()
      for _, bad in ipairs { "a b", { "a b" }, { "" }, { 1 }, { "a\n" } } do
        local ok, err = pcall(client, { scopes = bad })
        assert.is_false(ok)
        assert.matches("option 'scopes' must be", err)
      end
    end)
  end)

  describe("rate_limit.fallback", function()
    it("is checked: a whole number of at least 1", function()
      for _, bad in ipairs { 0, 1.5, "2", -1 } do
        local ok, err = pcall(client, { rate_limit = { requests = 10, window = 1, fallback = bad } })
        assert.is_false(ok)
        assert.matches("option 'rate_limit' must be", err)
      end
      assert(client { rate_limit = { requests = 10, window = 1, fallback = 3 } })
    end)

    it("paces a process at n per window while the cache cannot count", function()
      local store = {}
      local no_incr = { get = function(_, k) return store[k] end, set = function(_, k, v) store[k] = v end }
      local c = client { cache = no_incr, rate_limit = { requests = 100, window = 3600, fallback = 3 }, deadline = 5 }
      for _ = 1, 3 do assert(c:track(ID)) end
      local _, err = c:track(ID)
      assert.equal("rate_limited", err.kind)
      assert.equal(3, #f:log_for "/v1/")
    end)
  end)
end)
