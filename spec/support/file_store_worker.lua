--- One process writing answers into a file cache used as a response store:
-- client:track for the fake IDs prefix..from .. prefix..to (fake.ids'
-- form), with spotify.responses{store = spotify.cache.file(path)}, then a
-- JSON summary on stdout.
--
--   luajit spec/support/file_store_worker.lua build=build/luajit api_base=URL token_url=URL \
--     path=PATH prefix=P from=1 to=100 [start_at=wall time]
--
-- Run from the project root. Summary: ok, failed, first_error, stats.
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

local client = spotify.client {
  client_id = "test-id", client_secret = "test-secret", api_base = args.api_base,
  token_url = args.token_url, timeout = 30, cache = spotify.cache.file(args.path),
  responses = spotify.responses { store = spotify.cache.file(args.path), ttl = 3600 },
}

-- Every worker starts at the same moment, whatever its start-up time.
local start_at = tonumber(args.start_at)
if start_at then
  local wait = start_at - testing.time()
  if wait > 0 then core.sleep(wait) end
end

local ok, failed, first_error = 0, 0, nil
for i = tonumber(args.from), tonumber(args.to) do
  local id = (args.prefix .. "%021d"):format(i)
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
