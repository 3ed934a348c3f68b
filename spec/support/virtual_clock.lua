--- A virtual monotonic clock for specs that retry a lot: `core.sleep` records
-- the wait and moves the clock on instead of blocking, so a matrix of
-- retries with real backoff values runs in seconds. Network time (timeouts,
-- slow answers) stays real; `core.now` is the real clock plus every wait
-- skipped so far, so deadlines and Retry-After penalties see time pass.
--
--   local clock = require("spec.support.virtual_clock").install()
--   local spotify = require "spotify"   -- after install: it keeps core.now/sleep
--   clock.waits  -- every wait asked for, in order;  clock.reset()
local clock = {}

--- Replace core.now and core.sleep; must run before `require "spotify"`.
-- @return the clock
function clock.install()
  local core = require "spotify.core"
  assert(package.loaded.spotify == nil, "virtual_clock: install before require 'spotify'")
  if clock.installed then return clock end
  local real_now = core.now
  local skipped = 0
  clock.waits = {}
  core.now = function() return real_now() + skipped end
  core.sleep = function(seconds)
    clock.waits[#clock.waits + 1] = seconds
    if seconds > 0 then skipped = skipped + seconds end
  end
  clock.installed = true
  return clock
end

--- Forget the recorded waits.
function clock.reset()
  clock.waits = {}
end

--- Sum of the recorded waits.
function clock.total()
  local sum = 0
  for _, w in ipairs(clock.waits) do sum = sum + w end
  return sum
end

return clock
