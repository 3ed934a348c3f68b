--- One process of a fleet: makes `calls` API calls against the fake
-- Spotify with the given token cache and prints a JSON summary on stdout.
--
--   luajit spec/support/fleet_worker.lua build=build/luajit api_base=URL token_url=URL \
--     cache=redis|redis_cluster|file|memory|file_noincr target=PORT|HOST:PORT,...|PATH calls=50
--     [pause=s] [start_at=wall time]
--     [refresh_buffer=s] [redis_timeout=s] [rate_requests=N rate_window=s [rate_fallback=n]]
--     [max_retry_after=s] [worker=name] [track=ID] [deadline=s]
--
-- Run from the project root. Summary: ok, failed, errors (first messages),
-- token_fetches, cache_hits, cache_errors, cache_error_events, tokens (every
-- distinct token used, in order), last_token, rate_limited_waits, started and
-- finished (wall clock), longest (the longest call, seconds).
local args = {}
for _, a in ipairs(arg) do
  local k, v = a:match "^([%w_]+)=(.*)$"
  if k then args[k] = v end
end

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = assert(args.build, "build=DIR is required") .. "/?.so;" .. package.cpath

local cjson = require "cjson"
local spotify = require "spotify"
local core = require "spotify.core"
local testing = core.testing()

local TRACK = args.track or "4iV5W9uYEdYUVa79Axb7Rh"

local function redis_cache(port, timeout)
  local redis = require "redis"
  local function connect()
    return redis.connect { host = "127.0.0.1", port = tonumber(port), timeout = timeout }
  end
  -- No connection up front: the cache connects on first use, and again
  -- after a failure, so a server that is down at start is a cache error too.
  return spotify.cache.redis(nil, { prefix = "spotify:", connect = connect, timeout = timeout })
end

-- A Redis Cluster through examples/redis_cluster.lua: a connection that
-- follows MOVED and ASK, as every cluster client does.
local function redis_cluster_cache(nodes, timeout)
  local redis_cluster = require "examples.redis_cluster"
  local list = {}
  for address in nodes:gmatch "[^,]+" do list[#list + 1] = address end
  local function connect() return redis_cluster.connect { nodes = list, timeout = timeout } end
  return spotify.cache.redis(nil, { prefix = "spotify:", connect = connect, timeout = timeout })
end

local function make_cache()
  local kind = args.cache or "memory"
  if kind == "redis" then return redis_cache(args.target, tonumber(args.redis_timeout) or 0.5) end
  if kind == "redis_cluster" then return redis_cluster_cache(args.target, tonumber(args.redis_timeout) or 0.5) end
  if kind == "file" then return spotify.cache.file(args.target) end
  if kind == "file_noincr" then -- a shared cache that cannot count: get, set and the lock only
    local file = spotify.cache.file(args.target)
    return {
      get = function(_, ...) return file:get(...) end, set = function(_, ...) return file:set(...) end,
      lock = function(_, ...) return file:lock(...) end, unlock = function(_, ...) return file:unlock(...) end,
    }
  end
  return spotify.cache.memory()
end

local cache_error_events = 0
local client = spotify.client {
  client_id = "test-id", client_secret = "test-secret",
  api_base = args.api_base, token_url = args.token_url,
  cache = make_cache(),
  refresh_buffer = tonumber(args.refresh_buffer) or 60,
  timeout = 5,
  max_retry_after = tonumber(args.max_retry_after) or 60,
  deadline = tonumber(args.deadline),
  user_agent = args.worker and ("fleet-worker-" .. args.worker) or nil, -- the fake logs it
  rate_limit = args.rate_requests and { requests = tonumber(args.rate_requests), window = tonumber(args.rate_window),
    fallback = tonumber(args.rate_fallback) } or nil,
  on_request = function(info)
    if info.event == "cache_error" then cache_error_events = cache_error_events + 1 end
  end,
}

-- Every worker starts at the same moment, whatever its start-up time.
local start_at = tonumber(args.start_at)
if start_at then
  local wait = start_at - testing.time()
  if wait > 0 then core.sleep(wait) end
end

local summary = { ok = 0, failed = 0, errors = {}, tokens = {}, started = testing.time(), longest = 0 }
local seen = {}
local pause = tonumber(args.pause) or 0
for _ = 1, tonumber(args.calls) or 50 do
  local called = core.now()
  local track, err = client:track(TRACK)
  summary.longest = math.max(summary.longest, core.now() - called)
  if track and track.id == TRACK then
    summary.ok = summary.ok + 1
  else
    summary.failed = summary.failed + 1
    if #summary.errors < 5 then summary.errors[#summary.errors + 1] = tostring(err) end
  end
  local tok = client:access_token()
  if tok and not seen[tok] then
    seen[tok] = true
    summary.tokens[#summary.tokens + 1] = tok
  end
  summary.last_token = tok
  if pause > 0 then core.sleep(pause) end
end

summary.finished = testing.time()
local stats = client:stats()
summary.rate_limited_waits = stats.rate_limited_waits
summary.token_fetches, summary.cache_hits = stats.token_fetches, stats.cache_hits
summary.cache_errors, summary.cache_error_events = stats.cache_errors, cache_error_events
io.write(cjson.encode(summary), "\n")
client:close()
