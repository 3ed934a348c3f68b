--- A virtual monotonic clock for specs that retry a lot: the core's sleeps
-- record the wait and move the clock on instead of blocking, so a matrix of
-- retries with real backoff values runs in seconds. Network time (timeouts,
-- slow answers) stays real; the core's monotonic clock is the real one plus
-- every wait skipped so far, so deadlines and Retry-After penalties see
-- time pass.
--
--   local clock = require("spec.support.virtual_clock").install()
--   clock.waits  -- every wait asked for, in order;  clock.reset()
local clock = setmetatable({}, {
  __index = function(_, k)
    if k == "waits" then return require("spotify.core").testing().virtual_waits() end
  end,
})

--- Switch the core's clock to virtual.
-- @return the clock
function clock.install()
  require("spotify.core").testing().virtual_clock(true)
  return clock
end

--- Forget the recorded waits.
function clock.reset()
  require("spotify.core").testing().virtual_reset()
end

--- Sum of the recorded waits.
function clock.total()
  local sum = 0
  for _, w in ipairs(clock.waits) do sum = sum + w end
  return sum
end

return clock
