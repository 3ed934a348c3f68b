--- lua-spotify: the Spotify Web API for Lua, app-only (client credentials).
-- The client is a userdata of the C core (spotify.core), which owns its
-- options, token, caches, stats and every decision of an exchange; this
-- module holds the public methods, the option checks and the endpoint
-- table.
-- @module spotify
local core = require "spotify.core"
local calls = require "spotify.calls"
local errors = require "spotify.errors"
local options = require "spotify.options"
local prometheus = require "spotify.prometheus"
local tasks = require "spotify.tasks"

local spotify = {
  VERSION = "0.1.0",
  null = core.null,
  cache = {},
}

local env_of, is_closed = core.env, core.is_closed
local methods = {}

local function invalid(message)
  return errors.new("invalid_argument", { message = message })
end

-- With the `metrics` option, what a call counted goes to the shared dict
-- as it returns: every method reaches the drivers through these two.
local function counted(fn)
  return function(self, env, ...)
    local a, b = fn(self, env, ...)
    if env.metrics then prometheus.flush(self, env) end
    return a, b
  end
end
local get, get_all = counted(calls.get), counted(calls.get_all)

local context = { env_of = env_of, get = get, get_all = get_all, invalid = invalid,
  batch_lookup = counted(calls.batch_lookup) }

--- Make a client. See the README for every option.
-- @tparam[opt] table opts options
-- @return the client (raises on bad options)
function spotify.client(opts)
  local o = options.resolve(opts, spotify.VERSION)
  o.cache = o.cache or core.memory_cache()
  local insecure = not o.access_token and not o.gateway and options.insecure_token_url(o.token_url)
  if insecure and o.on_request then -- said once, when the client is made
    pcall(o.on_request, { event = "insecure_token_url", message = insecure })
  end
  local client = core.new(o, {
    api_base = o.api_base, market = o.market, batch = o.batch, concurrency = o.concurrency,
    batch_window = o.batch_window and o.batch_window > 0 and o.batch_window or nil,
    -- env.transport (the nginx driver's settings) is set by core.new from C
    -- metrics: the `app` label (never a secret) and the shared dict, if any
    app = o.budget_key or o.client_id or "", metrics = o.metrics,
    gateway = o.gateway ~= nil, -- a gateway's client: it holds no token
  })
  prometheus.track(client)
  return client
end

-- A request-target's characters: what cannot reach a request line or a
-- header (CR, LF, NUL, any control character, space) is refused here, for
-- every driver (client:get's path and query, a page's next link).
local function bad_target(s)
  return s:find "[%c ]" ~= nil
end

-- A dot segment ("." or "..", also percent-encoded) would let a URL leave
-- the path it names once a server or libcurl normalizes it.
local function has_dot_segment(p)
  local plain = p:gsub("%%2[eE]", ".")
  if plain:find("%.%.") then return true end
  for seg in plain:gmatch "[^/]+" do
    if seg == "." then return true end
  end
  return false
end

-- An absolute URL for `path`: a path below api_base, or a full URL that
-- starts with api_base (a page's `next` link); nothing else, so the token
-- never goes to another host. Returns url, query or nil.
local function url_for(env, path)
  if type(path) ~= "string" or bad_target(path) then return nil end
  local base = env.api_base
  if path:sub(1, #base + 1) == base .. "/" then path = path:sub(#base + 1) end
  local p, q = path:match "^([^?#]*)(%??[^#]*)$"
  if not p or not p:match("^/[%w%-%._~/%%]*$") or has_dot_segment(p) or p:find("%%2[fF]") then return nil end
  return base .. p, q ~= "" and q or nil
end
context.url_for = url_for

-- A refused URL as text for a message: control characters escaped.
local function shown(s)
  return (tostring(s):gsub("%c", function(ch) return ("\\%d"):format(ch:byte()) end))
end
context.shown = shown

--- GET any API path or URL. syntax: `value, err = client:get(path, query)`
-- @tparam string path below api_base ("/tracks/ID"), or a full URL that
-- starts with api_base, such as a page's `next`
-- @tparam[opt] table query parameters
-- @return decoded JSON, or nil, err
function methods.get(self, path, query)
  local env, err = env_of(self)
  if not env then return nil, err end
  local url, own_query = url_for(env, path)
  if not url then
    return nil, invalid("path must start with / (or with api_base) and hold only path characters"
      .. " (no dot segments, no control characters or spaces), got " .. shown(path))
  end
  if query ~= nil and type(query) ~= "table" then return nil, invalid("query must be a table") end
  local qs = own_query and own_query:sub(2) or nil
  if query ~= nil and next(query) ~= nil then
    local more, why = core.query(query)
    if not more then return nil, invalid(why) end
    qs = qs and qs ~= "" and (qs .. "&" .. more) or more
  end
  if qs and qs ~= "" then url = url .. "?" .. qs end
  return get(self, env, url)
end

--- The current access token, fetched or renewed as needed.
-- syntax: `token, seconds_left = client:access_token()`
-- @return token, seconds_left (nil for a fixed access_token), or nil, err
function methods.access_token(self)
  local genv = env_of(self)
  if genv and genv.gateway then
    return nil, invalid("a gateway's client holds no token: the gateway fetches and keeps it")
  end
  local token, left = calls.access_token(self)
  local env = env_of(self)
  if env and env.metrics then prometheus.flush(self, env) end
  return token, left
end

--- Counters. syntax: `stats = client:stats()`
-- @treturn table requests, retries, token_fetches, cache_hits, cache_errors,
-- bytes_received, connections_opened
function methods.stats(self)
  return core.stats(self)
end

--- Free every handle. Idempotent; also run by __gc and __close. Started
-- requests that have not finished finish with kind "closed".
-- syntax: `client:close()`
function methods.close(self)
  local env = env_of(self)
  core.close(self)
  if env then tasks.close_all(env) end
end

local Request = {}
Request.__index = Request

--- Has the started request finished? syntax: `done = req:done()`
-- @treturn boolean
function Request:done()
  return self.task.done == true
end

--- The request's results once done. syntax: `value, err = req:result()`
-- @return what the method returns, or nil, err (kind "invalid_argument"
-- while it is not done, "closed" once cancelled or its client closed)
function Request:result()
  if not self.task.done then
    return nil, errors.new("invalid_argument", { message = "request is not done; call client:poll()" })
  end
  return tasks.result(self.task)
end

--- Stop the request. syntax: `cancelled = req:cancel()`
-- @treturn boolean whether it was still running
function Request:cancel()
  local env = env_of(self.client)
  if not env then return false end
  return tasks.cancel(self.client, env, self.task)
end

-- Not API methods: nothing to start. (access_token: its renewal would block.)
local not_startable = {
  start = true, poll = true, close = true, items = true, pages = true, fd_info = true, access_token = true,
  stats = true,
}

--- Start any API method without blocking.
-- syntax: `req = client:start(method_name, ...)`; advance with client:poll()
-- @return a request object (raises for a name that is not an API method,
-- and inside nginx, where ngx.thread.spawn does this)
function methods.start(self, name, ...)
  local fn = methods[name]
  if type(name) ~= "string" or type(fn) ~= "function" or not_startable[name] then
    error("spotify: client:start needs the name of an API method, got " .. tostring(name), 2)
  end
  if calls.in_nginx then
    error("spotify: client:start and client:poll would block nginx's worker; run the call in a"
      .. " light thread with ngx.thread.spawn instead", 2)
  end
  local env, err = env_of(self)
  if not env then
    return setmetatable({ task = { done = true, results = { n = 2, nil, err } }, client = self }, Request)
  end
  return setmetatable({ task = tasks.spawn(env, fn, self, ...), client = self }, Request)
end

--- Advance every started request; never blocks longer than `wait` seconds.
-- syntax: `pending = client:poll([wait])`
-- @treturn integer started requests not finished yet
function methods.poll(self, wait)
  if calls.in_nginx then
    error("spotify: client:poll would block nginx's worker; use ngx.thread.spawn", 2)
  end
  if is_closed(self) then return 0 end
  return tasks.poll(self, env_of(self), wait or 0)
end

--- Sockets and timeout for an external event loop.
-- syntax: `info = client:fd_info()` -> {read = {fd...}, write = {fd...}, timeout = s}
function methods.fd_info(self)
  return core.fd_info(self)
end

require("spotify.catalog").install(methods, context)
require("spotify.paging").install(methods, context)

core.client_mt.__index = methods
-- `local c <close> = spotify.client{...}` closes through the same method,
-- so its started requests finish too.
core.client_mt.__close = function(self) methods.close(self) end

spotify.responses = require("spotify.responses").new
spotify.cache.memory = require("spotify.cache.memory").new
spotify.cache.file = require("spotify.cache.file").new
spotify.cache.shdict = function(...) return require("spotify.cache.shdict").new(...) end
spotify.cache.redis = function(...) return require("spotify.cache.redis").new(...) end

--- Prometheus text exposition format (0.0.4) of the clients' counters.
-- syntax: `text = spotify.prometheus([dict])`
-- @param[opt] dict a shared dict (ngx.shared.NAME) that clients made with
-- `metrics = dict` count into (every nginx worker's clients); without it,
-- every live client of this process
-- @treturn string the exposition text (raises for a `dict` that is not one)
function spotify.prometheus(dict)
  return prometheus.text(dict)
end

--- A gateway: Spotify's catalog through nginx for callers that hold no
-- secret (nginx only). syntax: `gw = spotify.gateway(opts)`, then
-- `gw:serve()` from content_by_lua.
-- @tparam[opt] table opts every client option, plus `prefix` (default
-- "/v1") and `keys` (an ngx.shared dict or function(key) -> bool checking
-- X-Api-Key; default: open)
-- @return the gateway (raises on bad options)
function spotify.gateway(opts)
  return require("spotify.gateway").new(spotify, opts)
end

--- Is `v` an error returned by this module?
spotify.is_error = errors.is

return spotify
