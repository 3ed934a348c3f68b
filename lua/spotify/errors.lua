--- The one error type: a table with kind, status, message, retry_after,
-- reason (Spotify's error.reason), method and url, printed by the core's
-- `__tostring`. Errors of HTTP answers are built in C (src/errors.c).
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

local plain = {
  auth = "credentials or token refused",
  forbidden = "forbidden",
  not_found = "not found",
  bad_request = "bad request",
  rate_limited = "rate limited",
  server = "server error",
}

--- The error for an HTTP answer that is not a success.
function errors.from_response(kind, status, body, retry_after, method, url)
  local message = core.error_message(body)
  if not message or message == "" then
    message = (plain[kind] or kind) .. " (HTTP " .. status .. ")"
  end
  return errors.new(kind, {
    status = status, message = message, retry_after = retry_after,
    method = method, url = url,
  })
end

return errors
