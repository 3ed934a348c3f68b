--- One caller process of a gateway fleet: a client per gateway node (no
-- credentials), `lookups` single track lookups spread over the nodes and
-- the IDs; prints a JSON summary on stdout.
--
--   luajit spec/support/gateway_caller.lua build=build/luajit bases=URL1,URL2 ids=A,B,... \
--     lookups=500 seed=1
--
-- Run from the project root. Summary: ok (answers whose id is the one
-- asked), wrong, errors (first messages), token_fetches, secrets (answers
-- holding the word "secret" or "Bearer": none expected).
local args = {}
for _, a in ipairs(arg) do
  local k, v = a:match "^([%w_]+)=(.*)$"
  if k then args[k] = v end
end

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = assert(args.build, "build=DIR is required") .. "/?.so;" .. package.cpath

local cjson = require "cjson"
local spotify = require "spotify"

local function list(s)
  local out = {}
  for item in s:gmatch "[^,]+" do out[#out + 1] = item end
  return out
end

local bases, ids = list(args.bases), list(args.ids)
local lookups, seed = tonumber(args.lookups or "500"), tonumber(args.seed or "1")
local clients = {}
for i, base in ipairs(bases) do clients[i] = spotify.client { gateway = base, timeout = 20 } end

local summary = { ok = 0, wrong = 0, errors = {}, token_fetches = 0, secrets = 0 }
for i = 1, lookups do
  local id = ids[(i * 7 + seed * 13) % #ids + 1]
  local c = clients[(i + seed) % #clients + 1]
  local track, err = c:track(id)
  -- neither the secret nor a token (the fake's are "tok-...") in an answer
  local text = track and cjson.encode(track) or tostring(err)
  if text:find("secret", 1, true) or text:find("tok-", 1, true) or text:find("Bearer", 1, true) then
    summary.secrets = (summary.secrets or 0) + 1
  end
  if track and track.id == id then
    summary.ok = summary.ok + 1
  else
    summary.wrong = summary.wrong + 1
    if #summary.errors < 5 then summary.errors[#summary.errors + 1] = tostring(err or track and track.id) end
  end
end
for _, c in ipairs(clients) do
  summary.token_fetches = summary.token_fetches + c:stats().token_fetches
  c:close()
end
io.write(cjson.encode(summary), "\n")
