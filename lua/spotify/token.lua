--- Token lifecycle for the client-credentials flow: lazy fetch, renewal
-- `refresh_buffer` seconds before expiry, single-flight renewal inside the
-- process (one fetch for all concurrent requests of a client) and across
-- processes (the cache's optional lock), and sharing through the cache.
local cjson = require "cjson.safe"
local core = require "spotify.core"
local errors = require "spotify.errors"

local time = core.time

local token = {}

local WAIT_STEP = 0.01 -- seconds between looks at the cache while another fetches

-- `s` with every plain occurrence of `secret` replaced by "<token>".
local function redact(s, secret)
  if type(secret) ~= "string" or secret == "" then return s end
  local out, from = {}, 1
  while true do
    local a, b = s:find(secret, from, true)
    if not a then break end
    out[#out + 1] = s:sub(from, a - 1) .. "<token>"
    from = b + 1
  end
  out[#out + 1] = s:sub(from)
  return table.concat(out)
end

local function cache_call(st, _, op, ...)
  local cache = st.cache
  local fn = cache[op]
  if not fn then return nil end
  local ok, a = pcall(fn, cache, ...)
  if ok then return a end
  st.stats.cache_errors = st.stats.cache_errors + 1
  if st.on_request then
    -- A cache's error may quote the value it was given, which holds the token.
    local message = redact(redact(tostring(a), st.token), st.refused)
    pcall(st.on_request, { event = "cache_error", op = op, message = message })
  end
  return nil
end

local function fresh(st, expires_at, now)
  return expires_at and now < expires_at - st.refresh_buffer
end

local function adopt(st, access_token, expires_at)
  st.token, st.expires_at = access_token, expires_at
  st.auth = "Bearer " .. access_token
end

-- The shared cache's token, if it is usable and not the one just refused.
local function from_cache(st, io, refused)
  local v = cache_call(st, io, "get", st.cache_key)
  if type(v) ~= "string" then return nil end
  local entry = cjson.decode(v)
  if type(entry) ~= "table" or type(entry.access_token) ~= "string"
      or type(entry.expires_at) ~= "number" then
    return nil
  end
  if entry.access_token == refused or not fresh(st, entry.expires_at, time()) then return nil end
  -- After a 401, a token issued before the refused one (another process's
  -- older token) is likely refused too: only a later one is taken.
  if st.refused_expires_at and entry.expires_at <= st.refused_expires_at then return nil end
  st.stats.cache_hits = st.stats.cache_hits + 1
  adopt(st, entry.access_token, entry.expires_at)
  return st.auth
end

local function fetch(st, io)
  local engine = require "spotify.engine"
  st.stats.token_fetches = st.stats.token_fetches + 1
  local status, body = engine.exchange(st, io, "POST", st.token_url,
    "grant_type=client_credentials", true)
  if not status then return nil, body end
  local access_token, expires_in = core.parse_token(body)
  if not access_token then
    return nil, errors.new("decode", { status = status, message = expires_in,
      method = "POST", url = st.token_url })
  end
  local expires_at = time() + expires_in
  adopt(st, access_token, expires_at)
  local ttl = math.floor(expires_in - st.refresh_buffer)
  if ttl > 0 then
    cache_call(st, io, "set", st.cache_key,
      cjson.encode { access_token = access_token, expires_at = expires_at }, ttl)
  end
  return st.auth
end

-- Another process holds the renewal lock: wait for its token to show up in
-- the cache, at most as long as the lock lives, then fetch our own.
local function wait_for_other(st, io, refused)
  local give_up = io.now() + st.lock_ttl
  local step = WAIT_STEP
  while io.now() < give_up do
    io.sleep(step)
    local auth = from_cache(st, io, refused)
    if auth then return auth end
    step = math.min(step * 2, 0.2)
  end
  return nil
end

local function renew(st, io, refused)
  local auth = from_cache(st, io, refused)
  if auth then return auth end
  local locked = cache_call(st, io, "lock", st.lock_key, st.lock_ttl)
  if locked == false then
    auth = wait_for_other(st, io, refused)
    if auth then return auth end
  elseif locked then
    -- Another process may have stored a token and released the lock between
    -- our first look and taking the lock: look again before fetching.
    auth = from_cache(st, io, refused)
    if auth then
      cache_call(st, io, "unlock", st.lock_key)
      return auth
    end
  end
  local err
  st.holds_lock = locked
  auth, err = fetch(st, io)
  st.holds_lock = nil
  if locked then cache_call(st, io, "unlock", st.lock_key) end
  return auth, err
end

--- The Authorization header value for the next API request, fetching or
-- renewing the token when needed.
-- @return "Bearer ..." or nil, err
function token.header(st, io)
  local auth = st.auth
  if auth and (st.fixed or fresh(st, st.expires_at, time())) then return auth end
  if st.fixed then return auth end
  if io.concurrent and st.renewing then
    -- Single flight: one request of this client renews, the others wait
    -- (bounded, in case the renewing request was cancelled or failed hard).
    local give_up = io.now() + st.lock_ttl
    while st.renewing and io.now() < give_up do io.sleep(WAIT_STEP) end
    if st.auth and fresh(st, st.expires_at, time()) then return st.auth end
  end
  -- No pcall here: on Lua 5.1 a coroutine cannot yield across it, and the
  -- scheduler's requests yield inside renew().
  st.renewing = coroutine.running() or true
  local a, err = renew(st, io, st.refused)
  st.renewing = false
  return a, err
end

--- A request was cancelled while it may have been renewing (thread `co`):
-- let the others renew, and release the cross-process lock it held.
function token.abandon(st, co)
  if not st.renewing or st.renewing ~= co then return end
  st.renewing = false
  if st.holds_lock then
    st.holds_lock = nil
    cache_call(st, nil, "unlock", st.lock_key)
  end
end

--- Can a 401 be cured by a new token?
function token.renewable(st)
  return not st.fixed
end

--- Forget a token the API refused, here and (by not adopting it again) in
-- the shared cache, which the next renewal overwrites for everyone.
function token.invalidate(st, auth)
  if st.auth == auth then
    st.refused, st.refused_expires_at = st.token, st.expires_at
    st.auth, st.token, st.expires_at = nil, nil, nil
  end
end

--- The held token and its seconds left when it needs no renewal yet,
-- without any I/O; nil otherwise.
function token.peek(st)
  if st.fixed or not st.auth then return nil end
  local now = time()
  if fresh(st, st.expires_at, now) then return st.token, st.expires_at - now end
  return nil
end

--- client:access_token() -> token, seconds_left | nil, err
function token.get(st, io)
  local auth, err = token.header(st, io)
  if not auth then return nil, err end
  if st.fixed then return st.token, nil end
  return st.token, st.expires_at - time()
end

return token
