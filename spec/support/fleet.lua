--- Runs a fleet of worker processes (spec/support/fleet_worker.lua) against
-- the fake Spotify, all starting at the same moment.
--
--   local finish = fleet.launch(dir, f, 8, { cache = "redis", target = port, calls = 15 })
--   local summaries = finish()   -- waits; one decoded summary per worker
--
-- A worker's own parameters come from `each(i)`; among them `clock = s`
-- runs it with its wall clock s seconds ahead (libfaketime; its monotonic
-- clock stays true), as a machine whose clock is off.
local cjson = require "cjson"
local core = require "spotify.core"
local testing = core.testing()
local files = require "spec.support.files"

local fleet = {}

--- The interpreter for the workers and its build directory, a sibling of
-- the one under test (build/lua5.4 -> build/luajit).
function fleet.runtime()
  local root = (os.getenv "SPOTIFY_BUILD" or "build/lua5.4"):match "^(.*)/[^/]+$" or "build"
  for _, lua in ipairs { "luajit", "lua5.1" } do
    local f = io.open(root .. "/" .. lua .. "/spotify/core.so", "rb")
    if f then
      f:close()
      return lua, root .. "/" .. lua
    end
  end
  error("spec/support/fleet: build " .. root .. "/luajit or " .. root .. "/lua5.1 first (make build)")
end

local FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

--- Whether workers can run with a clock off: libfaketime beside the
-- sanitizers' runtime (test-asan preloads it) hangs the process at start.
function fleet.can_skew_clocks()
  return not (os.getenv "LD_PRELOAD" or ""):find("libasan", 1, true)
end

-- The environment that sets a worker's wall clock `ahead` seconds off.
local function clock_env(ahead)
  if not ahead or ahead == 0 then return "" end
  assert(files.read_file(FAKETIME), "spec/support/fleet: " .. FAKETIME .. " is missing (Debian's faketime, in DEBS)")
  -- after what is preloaded already (the sanitizers' runtimes come first)
  local preload = ((os.getenv "LD_PRELOAD" or "") .. " " .. FAKETIME):gsub("^ ", "")
  return ("LD_PRELOAD='%s' FAKETIME=%+.3f DONT_FAKE_MONOTONIC=1 "):format(preload, ahead)
end

--- Start `workers` processes in the background with `params` (see
-- fleet_worker.lua; worker i sends User-Agent "fleet-worker-i") and, for
-- worker i, those of `each(i)` if given; returns a function that waits for
-- them and returns every worker's summary, raising when one printed none.
function fleet.launch(dir, f, workers, params, each)
  local lua, build = fleet.runtime()
  local start_at = testing.time() + 1.5
  local common = { "build=" .. build, "api_base=" .. f.api_base, "token_url=" .. f.token_url }
  for k, v in pairs(params) do common[#common + 1] = k .. "=" .. tostring(v) end
  local cmd = {}
  for i = 1, workers do
    local own = each and each(i) or {}
    local args = { table.concat(common, " ") }
    for k, v in pairs(own) do
      if k ~= "clock" then args[#args + 1] = k .. "=" .. tostring(v) end
    end
    -- every worker starts at the same moment, read on its own clock
    args[#args + 1] = ("start_at=%.3f"):format(start_at + (own.clock or 0))
    cmd[#cmd + 1] = ("%s%s spec/support/fleet_worker.lua %s worker=%d > %s/out%d 2> %s/err%d &")
      :format(clock_env(own.clock), lua, table.concat(args, " "), i, dir, i, dir, i)
  end
  local proc = assert(io.popen(table.concat(cmd, " ") .. " wait"))
  return function()
    proc:read "*a"
    proc:close()
    local out = {}
    for i = 1, workers do
      local text = files.read_file(dir .. "/out" .. i) or ""
      local ok, summary = pcall(cjson.decode, text)
      assert(ok and type(summary) == "table",
        "worker " .. i .. " printed no summary: " .. text .. (files.read_file(dir .. "/err" .. i) or ""))
      out[i] = summary
    end
    return out
  end
end

return fleet
