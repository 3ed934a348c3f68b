-- Response classification and header parsing: testing.classify on any status
-- (also outside 100-999, as a hostile server or a bug upstream could hand
-- over), testing.parse_retry_after and testing.backoff on any header value, and
-- testing.error_message on any error body.
local core = core
local testing = core.testing()

local KINDS = { auth = true, forbidden = true, not_found = true, bad_request = true,
  rate_limited = true, server = true }

local function check_status(status, for_token)
  local kind, retry, renew = testing.classify(status, for_token)
  if status >= 200 and status < 300 then
    assert(kind == nil, "a 2xx classified as an error")
    return
  end
  assert(KINDS[kind], "unknown kind " .. tostring(kind))
  assert(type(retry) == "boolean" and type(renew) == "boolean", "retry/renew not booleans")
  local should_retry = status == 429 or (status >= 500 and status <= 599)
  assert(retry == should_retry, "wrong retry decision for " .. status)
  if status == 429 then assert(kind == "rate_limited") end
  if renew then assert(status == 401 and not for_token, "renewal outside an API 401") end
end

local function check_retry_after(value, attempt)
  local ra = testing.parse_retry_after(value)
  if ra ~= nil then
    assert(type(ra) == "number" and ra == ra and ra >= 0, "bad Retry-After " .. tostring(ra))
  end
  local digits = value:match "^%s*(%d+)%s*$"
  if digits and #digits < 16 then
    assert(ra == tonumber(digits), "plain seconds misread: " .. value)
  end
  local wait = testing.backoff(attempt, ra)
  assert(wait == wait and wait >= (ra or 0) and wait > 0, "bad backoff")
  if not ra then assert(wait <= 8, "backoff above its cap") end
end

-- The printed error holds server text of any length and numbers whose
-- string form exists only while printing; an eager collector makes any
-- dangling pointer in the formatting show under ASan.
collectgarbage("incremental", 1, 1000)

local function check_error_text(status, message, retry_after)
  local e = setmetatable({ kind = "rate_limited", status = status, message = message,
    retry_after = retry_after, method = "GET", url = "https://api.spotify.com/v1/x" }, core.error_mt)
  local text = tostring(e)
  assert(text:find(message, 1, true), "message missing from the printed error")
end

function check(data)
  local status = #data >= 4 and string.unpack("<i4", data) or #data * 100 + (data:byte(1) or 0)
  local attempt = (data:byte(5) or 1) % 40 - 3
  check_status(status, false)
  check_status(status, true)
  check_retry_after(data:sub(6), attempt)
  check_error_text(status, data, testing.parse_retry_after(data:sub(6)) or #data + 0.5)
  local msg = testing.error_message(data)
  assert(msg == nil or type(msg) == "string", "error_message returned " .. type(msg))
end
