--- Drives the C binding floor (bench/floor.c) for bench/bench.py: the same
-- modes and output as bench/baseline.lua, on any interpreter, decoded with
-- cjson as the module does (no integer pass, no null walk).
--
-- usage: lua floor.lua MODE API_BASE TOKEN_URL N [CA_FILE]
--   MODE: track | search | multi16 | batch50
-- Needs floor.so on package.cpath (bench/run.sh builds one per interpreter).
local floor = require "floor"
local cjson = require "cjson"

local mode, api_base, token_url, n, ca_file = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
if ca_file == "" then ca_file = nil end
local WARMUP, IN_FLIGHT = 20, 16

local ids = {}
for line in assert(io.lines((assert(os.getenv "BENCH_IDS", "BENCH_IDS is not set")))) do
  if line ~= "" then ids[#ids + 1] = line end
end

local function fetch_token()
  local s = floor.session("Authorization: Basic YmVuY2gtY2xpZW50OmJlbmNoLXNlY3JldA==", ca_file)
  return cjson.decode(s:get(token_url, "grant_type=client_credentials")).access_token
end

local session = floor.session("Authorization: Bearer " .. fetch_token(), ca_file)

local function track_url(i) return api_base .. "/tracks/" .. ids[(i - 1) % #ids + 1] end
local function batch_url(i)
  local list = {}
  for k = 0, 49 do list[#list + 1] = ids[(i + k - 1) % #ids + 1] end
  return api_base .. "/tracks?ids=" .. table.concat(list, "%2C")
end
local function search_url() return api_base .. "/search?q=Muse&type=track%2Cartist%2Calbum" end

local checks = {
  track = function(v) assert(type(v.id) == "string") end,
  search = function(v) assert(#v.tracks.items > 0) end,
  batch50 = function(v) assert(#v.tracks == 50) end,
}
local urls = { track = track_url, search = search_url, batch50 = batch_url }

local function emit(cpu, wall)
  io.write(string.format('{"n": %d, "cpu_us": %.17g, "wall_s": %.17g, "conns": %d}\n',
    n, cpu * 1e6, wall, session:connections()))
end

local function measured(run)
  local cpu0, wall0 = os.clock(), floor.wall()
  run()
  emit(os.clock() - cpu0, floor.wall() - wall0)
end

local function sequential(url_of, check)
  local function one(i) check(cjson.decode(session:get(url_of(i)))) end
  for i = 1, WARMUP do one(i) end
  measured(function() for i = 1, n do one(i) end end)
end

-- Like a plural call: every decoded track in one array, IN_FLIGHT at a time.
local function multi16()
  local function run(count)
    local list = {}
    for i = 1, count do list[i] = track_url(i) end
    local tracks = session:get_many(list, IN_FLIGHT)
    for i = 1, count do
      tracks[i] = cjson.decode(tracks[i])
      checks.track(tracks[i])
    end
    return tracks
  end
  run(32)
  measured(function() assert(#run(n) == n) end)
end

if urls[mode] then
  sequential(urls[mode], checks[mode])
elseif mode == "multi16" then
  multi16()
else
  error("floor: unknown mode " .. tostring(mode))
end
