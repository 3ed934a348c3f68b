--- lua-spotify: the Spotify Web API for Lua, app-only (client credentials).
-- @module spotify
local core = require "spotify.core"
local engine = require "spotify.engine"
local errors = require "spotify.errors"
local options = require "spotify.options"
local scheduler = require "spotify.scheduler"
local token = require "spotify.token"

local spotify = {
  VERSION = "0.1.0",
  null = core.null,
  cache = {},
}

local states = setmetatable({}, { __mode = "k" })
local methods = {}

local in_nginx = type(rawget(_G, "ngx")) == "table" and type(ngx.get_phase) == "function"

local sync_io = {
  concurrent = false,
  now = core.now,
  sleep = core.sleep,
  http = function(st, method, url, auth, body)
    return core.perform(st.ud, method, url, auth, body)
  end,
}

--- The io object for the calling context: a scheduler task, nginx, or a
-- plain blocking call.
local function io_for(st)
  if st.sched and scheduler.inside(st) then return scheduler.io end
  if in_nginx then return require("spotify.ngx").io(st) end
  return sync_io
end

local function invalid(message)
  return errors.new("invalid_argument", { message = message })
end

--- The state behind a client, or nil, err when it is closed.
local function state_of(self)
  local st = states[self]
  if st == nil then error("spotify: expected a client (did you write client.method instead of client:method?)", 3) end
  if st.closed then return nil, errors.new("closed", { message = "client is closed" }) end
  return st
end

--- Run fns concurrently (at most `concurrency` at once), in the way the
-- context allows. Returns a list of {value, err}, in order.
local function run_all(st, fns)
  if in_nginx and not scheduler.inside(st) then
    return require("spotify.ngx").gather(st, fns, st.concurrency)
  end
  local wrapped = {}
  for i, fn in ipairs(fns) do
    wrapped[i] = function() return { fn() } end
  end
  local tasks = scheduler.gather(st, wrapped, st.concurrency)
  local out = {}
  for i, task in ipairs(tasks) do out[i] = scheduler.result(task) end
  return out
end

local context = {
  states = states, state_of = state_of, io_for = io_for, run_all = run_all,
  invalid = invalid,
}

--- Make a client. See the README for every option.
-- @tparam[opt] table opts options
-- @return the client (raises on bad options)
function spotify.client(opts)
  local o = options.resolve(opts, spotify.VERSION)
  local ud = core.new(o)
  local st = {
    ud = ud, cache = o.cache or spotify.cache.memory(), market = o.market,
    api_base = o.api_base, token_url = o.token_url,
    max_retries = o.max_retries, max_retry_after = o.max_retry_after,
    refresh_buffer = o.refresh_buffer, deadline = o.deadline,
    on_request = o.on_request, batch = o.batch, concurrency = o.concurrency,
    timeout = o.timeout, lock_ttl = o.timeout,
    -- read by the nginx transport (libcurl has its own copies in C)
    connect_timeout = o.connect_timeout, max_body = o.max_body, user_agent = o.user_agent,
    proxy = o.proxy,
    blocked_until = 0,
    stats = { requests = 0, retries = 0, token_fetches = 0, cache_hits = 0, cache_errors = 0 },
  }
  if o.access_token then
    st.fixed, st.token, st.auth = true, o.access_token, "Bearer " .. o.access_token
  else
    st.client_id = o.client_id
    st.basic_auth = core.basic_auth(o.client_id, o.client_secret)
    st.cache_key = o.client_id
    st.lock_key = o.client_id .. ":lock"
  end
  states[ud] = st
  return ud
end

--- GET any API path. syntax: `value, err = client:get(path, query)`
-- @tparam string path below api_base, e.g. "/tracks/ID"
-- @tparam[opt] table query parameters
-- @return decoded JSON, or nil, err
function methods.get(self, path, query)
  local st, err = state_of(self)
  if not st then return nil, err end
  if type(path) ~= "string" or not path:match("^/[%w%-%._~/%%]*$") or path:find("%.%.")
      or path:find("%%2[fF]") then
    return nil, invalid("path must start with / and hold only path characters, got " .. tostring(path))
  end
  local url = st.api_base .. path
  if query ~= nil then
    if type(query) ~= "table" then return nil, invalid("query must be a table") end
    if next(query) ~= nil then
      local qs, why = core.query(query)
      if not qs then return nil, invalid(why) end
      url = url .. "?" .. qs
    end
  end
  return engine.get(st, io_for(st), url)
end

--- The current access token. syntax: `token, seconds_left = client:access_token()`
-- @return token, seconds_left, or nil, err
function methods.access_token(self)
  -- Fast path: a cached token well before its renewal time.
  local st = states[self]
  if st and not st.closed then
    local tok, left = token.peek(st)
    if tok then return tok, left end
  end
  local err
  st, err = state_of(self)
  if not st then return nil, err end
  return token.get(st, io_for(st))
end

--- Counters. syntax: `stats = client:stats()`
-- @treturn table requests, retries, token_fetches, cache_hits, cache_errors,
-- bytes_received, connections_opened
function methods.stats(self)
  local st = states[self]
  local s = {}
  for k, v in pairs(st.stats) do s[k] = v end
  s.bytes_received, s.connections_opened = st.bytes_received or 0, st.connections_opened or 0
  if not st.closed then
    local _, bytes, conns = core.transport_stats(st.ud)
    s.bytes_received, s.connections_opened = bytes, conns
  end
  s.bytes_received = s.bytes_received + (st.ngx_bytes or 0)
  s.connections_opened = s.connections_opened + (st.ngx_connections or 0)
  return s
end

--- Free every handle. Idempotent; also run by __gc and __close.
-- syntax: `client:close()`
function methods.close(self)
  local st = states[self]
  if st == nil or st.closed then return end
  local _, bytes, conns = core.transport_stats(st.ud)
  st.bytes_received, st.connections_opened = bytes, conns
  st.closed = true
  core.close(self)
end

local Request = {}
Request.__index = Request

--- Has the started request finished? syntax: `req:done()`
function Request:done()
  return self.task.done == true
end

--- The request's results once done. syntax: `value, err = req:result()`
function Request:result()
  if not self.task.done then
    return nil, errors.new("invalid_argument", { message = "request is not done; call client:poll()" })
  end
  if self.task.cancelled then return nil, errors.new("closed", { message = "request was cancelled" }) end
  return scheduler.result(self.task)
end

--- Stop the request. syntax: `req:cancel()`
function Request:cancel()
  local st = states[self.client]
  if st and not st.closed then return scheduler.cancel(st, self.task) end
  return false
end

--- Start any API method without blocking.
-- syntax: `req = client:start(method_name, ...)`; advance with client:poll()
function methods.start(self, name, ...)
  local st = states[self]
  if st == nil then error("spotify: expected a client", 2) end
  local fn = methods[name]
  if type(name) ~= "string" or type(fn) ~= "function" or name == "start" or name == "poll"
      or name == "close" or name == "items" or name == "pages" then
    error("spotify: client:start needs the name of an API method, got " .. tostring(name), 2)
  end
  if st.closed then
    local task = { done = true, results = { n = 2, nil, errors.new("closed", { message = "client is closed" }) } }
    return setmetatable({ task = task, client = self }, Request)
  end
  local task = scheduler.spawn(st, fn, self, ...)
  return setmetatable({ task = task, client = self }, Request)
end

--- Advance every started request; never blocks longer than `wait` seconds.
-- syntax: `pending = client:poll([wait])`
function methods.poll(self, wait)
  local st = states[self]
  if st == nil or st.closed or not st.sched then return 0 end
  return scheduler.step(st, wait or 0)
end

--- Sockets and timeout for an external event loop.
-- syntax: `info = client:fd_info()` -> {read = {fd...}, write = {fd...}, timeout = s}
function methods.fd_info(self)
  local st = states[self]
  if st == nil or st.closed then return { read = {}, write = {} } end
  return core.fd_info(st.ud)
end

require("spotify.catalog").install(methods, context)
require("spotify.paging").install(methods, context)

local client_mt = core.client_mt
client_mt.__index = methods
client_mt.__close = function(self) methods.close(self) end
client_mt.__tostring = function(self)
  local st = states[self]
  return "spotify.client (" .. ((st == nil or st.closed) and "closed" or "open") .. ")"
end

spotify.cache.memory = require("spotify.cache.memory").new
spotify.cache.file = require("spotify.cache.file").new
spotify.cache.shdict = function(...) return require("spotify.cache.shdict").new(...) end
spotify.cache.redis = function(...) return require("spotify.cache.redis").new(...) end

--- Is `v` an error returned by this module?
spotify.is_error = errors.is

return spotify
