--- Client options: defaults and checks. A wrong type, an unknown name or
-- missing credentials raise at once, naming the option.
local options = {}

-- The one place the bounds live: the core takes these values as they are.
local function number_check(min, integer, strict, max)
  return function(v)
    if type(v) ~= "number" or v ~= v then return "a number" end
    if integer and v % 1 ~= 0 then return "an integer" end
    if strict and v <= min then return "a number above " .. min end
    if v < min then return "a number of at least " .. min end
    if max and v > max then return ("a number of at most %.14g"):format(max) end
  end
end

local DAY, FAR = 86400, 1e9 -- seconds

local function typed(t)
  return function(v)
    if type(v) ~= t then return "a " .. t end
  end
end

local function url(v)
  if type(v) ~= "string" or not v:match("^https?://[^/%s]+[^%s]*$") then
    return "an http:// or https:// URL"
  end
end

local function cache(v)
  local t = type(v)
  if t ~= "table" and t ~= "userdata" then return "a cache object (a table with get and set)" end
  local ok, get, set = pcall(function() return v.get, v.set end)
  if not ok or get == nil or set == nil then return "a cache object (a table with get and set)" end
end

local function whole(n)
  return type(n) == "number" and n >= 1 and n % 1 == 0 and n <= 100000
end

local function rate_limit(v)
  local want = "a table {requests = N, window = seconds, fallback = n} (N and n whole numbers from 1 to"
    .. " 100000, seconds above 0 and at most 86400, fallback optional)"
  if type(v) ~= "table" then return want end
  local n, w = v.requests, v.window
  if not whole(n) or type(w) ~= "number" or w ~= w or w <= 0 or w > DAY then
    return want
  end
  if v.fallback ~= nil and not whole(v.fallback) then return want end
  for k in pairs(v) do
    if k ~= "requests" and k ~= "window" and k ~= "fallback" then return want end
  end
end

local function budget_key(v)
  if type(v) ~= "string" or v == "" or v:find "[%c]" then
    return "a non-empty string without control characters"
  end
end

-- OAuth 2.0 scope tokens (RFC 6749, 3.3): printable ASCII but space, " and \.
local function scopes(v)
  local want = "a list of scope strings such as {\"user-read-email\"}"
  if type(v) ~= "table" then return want end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  for i = 1, n do
    local s = v[i]
    if type(s) ~= "string" or s == "" or s:find '[^!-~]' or s:find '["\\]' then return want end
  end
end

local function responses(v)
  local mt = getmetatable(v)
  if type(v) ~= "userdata" or type(mt) ~= "table" or mt.__name ~= "spotify.responses" then
    return "a response cache made by spotify.responses{...}"
  end
end

local function market(v)
  if type(v) ~= "string" or not (v:match("^%u%u$") or v == "from_token") then
    return "an ISO 3166-1 alpha-2 country code such as \"US\""
  end
end

-- A language tag as Accept-Language carries it ("de", "es-ES", "de, en;q=0.5"):
-- printable ASCII only, so it can never break the request's header lines.
local function language(v)
  if type(v) ~= "string" or v == "" or #v > 200 or v:find("[^\32-\126]") then
    return "a language tag such as \"de\" or \"es-ES\" (printable ASCII, no control characters)"
  end
end

-- A shared dict (ngx.shared.NAME) or anything with its get, incr and get_keys.
local function metrics(v)
  local want = "a shared dict (ngx.shared.NAME)"
  local t = type(v)
  if t ~= "table" and t ~= "userdata" then return want end
  local ok, get, incr, get_keys = pcall(function() return v.get, v.incr, v.get_keys end)
  if not ok or get == nil or incr == nil or get_keys == nil then return want end
end

-- X-Api-Key's value: printable ASCII, so it can never break a header line.
local function api_key(v)
  if type(v) ~= "string" or v == "" or #v > 1024 or v:find("[^\33-\126]") then
    return "a key of printable ASCII without spaces (at most 1024 bytes)"
  end
end

-- What a gateway's client has no use for: the gateway holds them.
local not_with_gateway = { "client_id", "client_secret", "access_token", "token_url", "scopes", "api_base" }

options.checks = {
  client_id = typed "string", client_secret = typed "string",
  access_token = typed "string", cache = cache, market = market,
  timeout = number_check(0, false, true, DAY), connect_timeout = number_check(0, false, true, DAY),
  max_retries = number_check(0, true, false, 1000), max_retry_after = number_check(0, false, false, FAR),
  refresh_buffer = number_check(0, false, false, FAR), api_base = url, token_url = url,
  ca_file = typed "string", proxy = typed "string", user_agent = typed "string",
  on_request = typed "function", batch = typed "boolean",
  concurrency = number_check(1, true), max_body = number_check(1, true, false, 64 * 1024 ^ 3),
  deadline = number_check(0, false, true, FAR), rate_limit = rate_limit,
  language = language, metrics = metrics,
  responses = responses, batch_window = number_check(0),
  budget_key = budget_key, scopes = scopes,
  gateway = url, gateway_key = api_key,
}

options.defaults = {
  timeout = 10, connect_timeout = 5, max_retries = 3, max_retry_after = 60,
  refresh_buffer = 60, api_base = "https://api.spotify.com/v1",
  token_url = "https://accounts.spotify.com/api/token", batch = true,
  concurrency = 8, max_body = 64 * 1024 * 1024,
}

-- The rejected value as the message shows it: strings quoted, numbers and
-- booleans as written, anything else by its type (a table's content or a
-- function's address would say nothing useful). The value of a secret
-- option is never shown, only its type.
local secret = { client_secret = true, access_token = true, gateway_key = true }
local function shown(v, k)
  local t = type(v)
  if secret[k] then return t end
  if t == "string" then return ("%q"):format(v) end
  if t == "number" or t == "boolean" then return tostring(v) end
  return t
end

-- Where the environment supplies a default: the credentials, and the two
-- endpoints, so a local fake Spotify is reached without editing code.
local from_env = {
  api_base = "SPOTIFY_API_BASE", token_url = "SPOTIFY_TOKEN_URL",
}
-- Hosts whose traffic never leaves the machine.
local function loopback(host)
  host = host:lower()
  return host == "localhost" or host:match "^127%.%d+%.%d+%.%d+$" ~= nil or host == "::1"
end

--- A warning when `token_url` is plain http:// to another machine (the
-- client secret would travel in clear), or nil.
function options.insecure_token_url(token_url)
  if type(token_url) ~= "string" then return nil end
  local host = token_url:match "^[hH][tT][tT][pP]://%[([^%]]+)%]" or token_url:match "^[hH][tT][tT][pP]://([^/:?#]+)"
  if not host or loopback(host) then return nil end
  return "token_url " .. token_url .. " is plain http:// to another machine: the client secret travels in clear"
end

--- Check `given` and return a new table with defaults filled in.
function options.resolve(given, version)
  if given ~= nil and type(given) ~= "table" then
    error("spotify.client: options must be a table, got " .. type(given), 3)
  end
  local o = {}
  for k, v in pairs(given or {}) do
    local check = options.checks[k]
    if type(k) ~= "string" or not check then
      error("spotify.client: unknown option '" .. tostring(k) .. "'", 3)
    end
    local want = check(v)
    if not want and type(v) == "string" and v:find "%c" then
      -- never quoted: the value may be a secret
      error(("spotify.client: option '%s' must not hold control characters (CR, LF, NUL ...)"):format(k), 3)
    end
    if want then
      error(("spotify.client: option '%s' must be %s, got %s"):format(k, want, shown(v, k)), 3)
    end
    o[k] = v
  end
  if o.gateway_key ~= nil and o.gateway == nil then
    error("spotify.client: option 'gateway_key' needs option 'gateway'", 3)
  end
  if o.gateway ~= nil then
    for _, k in ipairs(not_with_gateway) do
      if o[k] ~= nil then
        error(("spotify.client: option '%s' has no use with 'gateway' (the gateway holds the"
          .. " credentials and names Spotify's address)"):format(k), 3)
      end
    end
    o.api_base = o.gateway -- the environment's SPOTIFY_API_BASE names Spotify, not the gateway
  end
  for k, var in pairs(from_env) do
    local v = o[k] == nil and os.getenv(var)
    if v and v ~= "" then
      local want = options.checks[k](v)
      if want then
        error(("spotify.client: %s (the default of option '%s') must be %s, got %s"):format(
          var, k, want, shown(v)), 3)
      end
      o[k] = v
    end
  end
  for k, v in pairs(options.defaults) do
    if o[k] == nil then o[k] = v end
  end
  o.user_agent = o.user_agent or ("lua-spotify/" .. version)
  -- sent as the token request's `scope`, and part of the token's cache key
  if o.scopes and #o.scopes > 0 then o.scope = table.concat(o.scopes, " ") end
  o.api_base = o.api_base:gsub("/+$", "")
  if not o.access_token and not o.gateway then
    o.client_id = o.client_id or os.getenv "SPOTIFY_CLIENT_ID"
    o.client_secret = o.client_secret or os.getenv "SPOTIFY_CLIENT_SECRET"
    for _, k in ipairs { "client_id", "client_secret" } do
      if o[k] == nil or o[k] == "" then
        error(("spotify.client: option '%s' missing (pass it or set %s)"):format(
          k, "SPOTIFY_" .. k:upper()), 3)
      end
      if o[k]:find "%c" then
        error(("spotify.client: option '%s' (from %s) must not hold control characters"):format(
          k, "SPOTIFY_" .. k:upper()), 3)
      end
    end
  end
  return o
end

return options
