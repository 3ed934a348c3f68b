--- The request engine: token -> request -> classify -> retry/renew ->
-- decode. It is written once, against an `io` object, and driven by every
-- transport: blocking libcurl, the libcurl multi scheduler and nginx
-- cosockets. The decisions it applies (status classes, backoff, Retry-After,
-- token checks) are the C core's.
--
-- An io object has:
--   io.http(st, method, url, auth, body)
--     -> status, body, retry_after|nil, elapsed
--     |  nil, kind, message, retryable, elapsed
--   io.sleep(seconds), io.now() (monotonic seconds)
--   io.concurrent: true where other requests of the client run meanwhile
local core = require "spotify.core"
local errors = require "spotify.errors"
local token = require "spotify.token"

local classify, backoff, decode = core.classify, core.backoff, core.decode
local pcall = pcall

local engine = {}

local function observe(st, method, url, status, attempt, elapsed, body_or_kind)
  local cb = st.on_request
  if not cb then return end
  local info = {
    method = method, url = url, status = status, attempt = attempt,
    elapsed = elapsed,
  }
  if status then
    info.bytes = #body_or_kind
  else
    info.error = body_or_kind
  end
  pcall(cb, info)
end

-- Seconds to wait before the next attempt, or nil when giving up.
local function retry_delay(st, io, attempt, retry_after, started)
  if attempt > st.max_retries then return nil end
  if retry_after and retry_after > st.max_retry_after then return nil end
  local delay = backoff(attempt, retry_after)
  if st.deadline and io.now() + delay > started + st.deadline then return nil end
  return delay
end

-- A 429 means the whole app is over its limit: hold every request of this
-- client until Retry-After has passed instead of adding to the penalty.
local function respect_penalty(st, io, method, url, started)
  local wait = st.blocked_until - io.now()
  if wait <= 0 then return true end
  if wait > st.max_retry_after
      or (st.deadline and io.now() + wait > started + st.deadline) then
    return nil, errors.new("rate_limited", {
      message = "rate limited: waiting for an earlier Retry-After",
      retry_after = wait, method = method, url = url,
    })
  end
  io.sleep(wait)
  return true
end

--- One logical exchange with retries.
-- For API calls (`for_token` false) each attempt carries the current token
-- and a 401 renews it once; for the token endpoint the Basic header is used.
-- @return status, body for a 2xx answer, or nil, err
function engine.exchange(st, io, method, url, body, for_token)
  local attempt, renewed, started = 0, false, io.now()
  while true do
    local auth
    if for_token then
      auth = st.basic_auth
    else
      local ok, err = respect_penalty(st, io, method, url, started)
      if not ok then return nil, err end
      auth, err = token.header(st, io)
      if not auth then return nil, err end
    end
    attempt = attempt + 1
    st.stats.requests = st.stats.requests + 1
    local status, r1, r2, r3, r4 = io.http(st, method, url, auth, body)
    if status then
      -- r1 body, r2 retry_after, r3 elapsed
      observe(st, method, url, status, attempt, r3, r1)
      if status >= 200 and status < 300 then return status, r1 end
      local kind, retryable, renew = classify(status, for_token)
      if renew and not renewed and token.renewable(st) then
        renewed = true
        attempt = attempt - 1 -- a repeat with a new token is not a retry
        token.invalidate(st, auth)
      else
        local delay = retryable and retry_delay(st, io, attempt, r2, started)
        if not delay then return nil, errors.from_response(kind, status, r1, r2, method, url) end
        if status == 429 then st.blocked_until = io.now() + delay end
        st.stats.retries = st.stats.retries + 1
        io.sleep(delay)
      end
    else
      -- r1 kind, r2 message, r3 retryable, r4 elapsed
      observe(st, method, url, nil, attempt, r4, r1)
      local delay = r3 and retry_delay(st, io, attempt, nil, started)
      if not delay then return nil, errors.new(r1, { message = r2, method = method, url = url }) end
      st.stats.retries = st.stats.retries + 1
      io.sleep(delay)
    end
  end
end

--- GET a URL of the API and decode its JSON body.
-- @return the decoded value, or nil, err
function engine.get(st, io, url)
  local status, body = engine.exchange(st, io, "GET", url)
  if not status then return nil, body end
  local value, why = decode(body)
  if value == nil or type(value) ~= "table" then
    return nil, errors.new("decode", {
      status = status, message = "response is not a JSON object: " .. tostring(why or type(value)),
      method = "GET", url = url,
    })
  end
  return value
end

return engine
