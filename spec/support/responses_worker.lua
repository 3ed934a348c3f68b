--- One process of a fleet sharing a response cache in Redis: `calls`
-- client:track calls over `ids` IDs (in order, round after round) with
-- spotify.responses{store = redis, ttl = 3600}, then a JSON summary.
--
--   luajit spec/support/responses_worker.lua build=build/luajit api_base=URL token_url=URL \
--     port=REDIS_PORT calls=300 ids=100 [start_at=wall time]
--
-- Run from the project root. Summary: ok, failed, first_error, stats.
local args = {}
for _, a in ipairs(arg) do
  local k, v = a:match "^([%w_]+)=(.*)$"
  if k then args[k] = v end
end

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path .. ";/usr/share/lua/5.1/?.lua"
package.cpath = assert(args.build, "build=DIR is required") .. "/?.so;" .. package.cpath

local cjson = require "cjson"
local spotify = require "spotify"
local core = require "spotify.core"
local testing = core.testing()
local redis = require "redis"

local conn = redis.connect { host = "127.0.0.1", port = tonumber(args.port), timeout = 2 }
local store = spotify.cache.redis(conn, { prefix = "spotify:" })
local client = spotify.client {
  client_id = "test-id", client_secret = "test-secret", api_base = args.api_base,
  token_url = args.token_url, cache = store,
  responses = spotify.responses { store = store, ttl = 3600 },
}

local start_at = tonumber(args.start_at)
if start_at then
  local wait = start_at - testing.time()
  if wait > 0 then core.sleep(wait) end
end

local calls, n = tonumber(args.calls or 300), tonumber(args.ids or 100)
local ok, failed, first_error = 0, 0, nil
for i = 1, calls do
  local id = ("R%021d"):format((i - 1) % n + 1)
  local t, err = client:track(id)
  if t and t.id == id then
    ok = ok + 1
  else
    failed = failed + 1
    first_error = first_error or tostring(err)
  end
end
io.write(cjson.encode { ok = ok, failed = failed, first_error = first_error, stats = client:stats() })
client:close()
