--- The one error type: a table with kind, status, message, retry_after,
-- reason (Spotify's error.reason), method and url, printed by the core's
-- `__tostring`. Errors of HTTP answers are built in C (src/errors.c), which
-- also holds the plain text of each kind.
local core = require "spotify.core"

local errors = {}

local mt = core.error_mt

--- Make an error object.
-- @tparam string kind one of the kinds in the README
-- @tparam table fields status, message, retry_after, method, url
-- @treturn table the error
function errors.new(kind, fields)
  local e = fields or {}
  e.kind = kind
  return setmetatable(e, mt)
end

--- Is `v` an error made by this module?
function errors.is(v)
  return getmetatable(v) == mt
end

--- The error of a request that will not finish: its client was closed, or
-- (`message` given) the started request was cancelled. The one place such
-- errors are made on the Lua side.
-- @tparam[opt] string message defaults to "client is closed", the C core's text
-- @treturn table the error
function errors.closed(message)
  return errors.new("closed", { message = message or "client is closed" })
end

return errors
