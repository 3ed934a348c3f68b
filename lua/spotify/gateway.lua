--- The gateway: Spotify's catalog through nginx for every caller, with the
-- client secret and the app token in one place. An nginx content handler
-- over one client per worker: it decides which requests may go to Spotify
-- (the allow-list is the catalog rows of endpoints.lua, under `prefix`)
-- and hands on the answer's text as the machine kept or fetched it; every
-- other decision (response cache, coalescing, batch windows, pacing, 429
-- penalties, quota) is the client's, exactly as for a direct caller.
-- @module spotify.gateway
local catalog = require "spotify.catalog"
local core = require "spotify.core"
local endpoints = require "spotify.endpoints"
local options = require "spotify.options"
local prometheus = require "spotify.prometheus"

local parse_id, env_of, peek_text = core.parse_id, core.env, core.peek_text
local ceil, pcall, type = math.ceil, pcall, type

-- luacheck: globals ngx

local M = {}
local Gateway = {}
Gateway.__index = Gateway

-- Bounds of what a caller may ask: Spotify's longest catalog path is under
-- 100 bytes and a search fits in far less than this query.
local MAX_PATH, MAX_QUERY = 1024, 4096
-- Characters of a path and of a query (RFC 3986); anything else is refused.
local BAD_PATH = "[^%w%-%._~/:@!$&'()*+,;=]"
local BAD_QUERY = "[^%w%-%._~/:@!$&'()*+,;=?%%]"

-- Spotify's own query parameters of the catalog's GETs. Any other name
-- would only make a new cache key for the same answer (or carry something
-- Spotify never meant), so it is refused.
local PARAMS = {
  ids = true, market = true, limit = true, offset = true, include_groups = true, fields = true,
  additional_types = true, locale = true, q = true, type = true, include_external = true,
  country = true, timestamp = true, seed_artists = true, seed_genres = true, seed_tracks = true,
}
local function known_param(name)
  return PARAMS[name] or name:match "^min_[%l_]+$" or name:match "^max_[%l_]+$" or name:match "^target_[%l_]+$"
end

local JSON = "application/json; charset=utf-8"

-- A private lua-cjson: messages of the gateway's own errors, and items of
-- a batch window (the only answers that are not Spotify's text). Where the
-- build can, empty tables as [] (available_markets, genres, images are
-- arrays far more often than an empty object is sent); lua-cjson 2.1.0
-- writes {}.
local cjson = require("cjson.safe").new()
if cjson.encode_empty_table_as_object then cjson.encode_empty_table_as_object(false) end

-- The routes: every path (and fallback path) of the catalog's rows, split
-- into segments, "{id}" standing for the row's ID kind. By first segment.
local function routes_of()
  local by_first = {}
  local plurals = catalog.plurals()
  for _, row in ipairs(endpoints) do
    for _, path in ipairs { row.path, row.fallback } do
      local segs = {}
      for seg in path:gmatch "[^/]+" do segs[#segs + 1] = seg end
      local list = by_first[segs[1]] or {}
      by_first[segs[1]] = list
      list[#list + 1] = { segs = segs, row = row, name = catalog.method_name(row),
        plural = path == row.path and plurals[row.name] or nil }
    end
  end
  return by_first
end
local ROUTES = routes_of()

-- The route of a path's segments, its ID, or nil, status, message.
local function route_of(segs)
  local list = ROUTES[segs[1]]
  local bad_id
  for _, r in ipairs(list or {}) do
    if #r.segs == #segs then
      local id, fits = nil, true
      for i = 2, #segs do
        local want = r.segs[i]
        if want == "{id}" then
          id = segs[i]
        elseif want ~= segs[i] then
          fits = false
          break
        end
      end
      if fits then
        if not id then return r end
        local pid = parse_id(id, r.row.id)
        if pid == id then return r, id end
        bad_id = r -- the route fits but the ID does not: 400, as Spotify says
      end
    end
  end
  if bad_id then return nil, 400, "Invalid base62 id", bad_id end
  return nil, 404, "Service not found"
end

-- Check the query's names and the IDs of `ids`. Returns true or nil, message.
local function check_query(query, r)
  for pair in query:gmatch "[^&]+" do
    local name, value = pair:match "^([^=]*)=?(.*)$"
    if not known_param(name) then return nil, "unknown query parameter '" .. name:sub(1, 40) .. "'" end
    if name == "ids" then
      local batch = r.row.batch
      if not batch then return nil, "'ids' is not a parameter of this endpoint" end
      local n = 0
      for id in ngx.unescape_uri(value):gmatch "[^,]+" do
        n = n + 1
        if parse_id(id, r.row.id) ~= id then return nil, "invalid id" end
      end
      if n == 0 then return nil, "'ids' is empty" end
      if n > batch.max then return nil, ("too many ids requested (at most %d)"):format(batch.max) end
    end
  end
  return true
end

-- The gateway's requests by path kind and outcome (prometheus.lua names them).
local function count(self, kind, outcome)
  prometheus.gateway(self.env, kind, outcome)
end

local function outcome_of(status)
  if status == 429 then return "429" end
  if status >= 500 then return "5xx" end
  if status >= 400 then return "4xx" end
  return "2xx"
end

local function send(status, body, headers)
  ngx.status = status
  local h = ngx.header
  h["Content-Type"] = JSON
  for k, v in pairs(headers or {}) do h[k] = v end
  ngx.print(body)
end

-- The gateway's own refusal, in Spotify's error shape; nothing went upstream.
local function refuse(self, status, message, kind, headers)
  count(self, kind or "other", "refused")
  send(status, cjson.encode { error = { status = status, message = message } }, headers)
end

-- An error of the client as Spotify's error shape: Spotify's status and
-- message where it answered, else what the gateway met (no answer in
-- time, a broken connection, the app's rate limit held here).
local STATUS_OF = { timeout = 504, rate_limited = 429, closed = 503 }
local function failed(self, kind, err)
  local status = err.status
  -- A refused or failed token request, or Spotify refusing the gateway's
  -- token, is the gateway's trouble, not the caller's credentials: never a
  -- 401 the caller would take for its key.
  if not status or err.method ~= "GET" or status < 400 or status > 599 or status == 401 then
    status = STATUS_OF[err.kind] or 502
  end
  local headers
  if status == 429 and err.retry_after then headers = { ["Retry-After"] = tostring(ceil(err.retry_after)) } end
  local message = (err.method == "POST" or err.status == 401) and "the gateway could not get a token from Spotify"
    .. " that Spotify accepts" or err.message or err.kind
  count(self, kind, outcome_of(status))
  send(status, cjson.encode { error = { status = status, message = message, reason = err.reason } }, headers)
end

-- X-Api-Key against opts.keys: a function(key) -> bool or a shared dict.
local function admitted(self)
  local keys = self.keys
  if keys == nil then return true end
  local key = ngx.req.get_headers()["x-api-key"]
  if type(key) ~= "string" or key == "" then return false, "missing X-Api-Key" end
  local ok, yes
  if type(keys) == "function" then
    ok, yes = pcall(keys, key)
  else
    ok, yes = pcall(keys.get, keys, key)
  end
  if not ok then ngx.log(ngx.ERR, "spotify.gateway: the keys check raised: ", tostring(yes)) end
  if ok and yes then return true end
  return false, "invalid X-Api-Key"
end

-- A single lookup in a batch window: the kept text if there is one, else
-- the item of the window's batch answer as the response cache kept it, or
-- encoded where nothing keeps it (the window hands out items, not text).
-- Returns status, body, or nil, err.
local function in_window(self, r, id, url, query)
  local text = peek_text(self.client, url, r.name)
  if text then
    require("spotify.ngx").renew_handed_out(self.client) -- one handed out expired
    return 200, text
  end
  local opts = query ~= "" and ngx.decode_args(query, 0) or nil
  local value, err = self.client[r.row.name](self.client, id, opts)
  if value == nil then return nil, err end
  -- The window's batch answer kept each item's own text (the response
  -- cache keeps a batch per item): hand that on, as a later hit would.
  text = peek_text(self.client, url, r.name)
  if text then return 200, text end
  local body = cjson.encode(value)
  if not body then return nil, { kind = "decode", message = "the answer could not be encoded again" } end
  return 200, body
end

--- Answer the current request (call from content_by_lua).
-- syntax: `gw:serve()`
function Gateway:serve()
  local target = ngx.var.request_uri
  local path, query = target:match "^([^?]*)%??(.*)$"
  if #path > MAX_PATH or #query > MAX_QUERY then return refuse(self, 414, "URI too long") end
  local ok, why = admitted(self)
  if not ok then return refuse(self, 401, why) end
  local method = ngx.req.get_method()
  if method ~= "GET" then return refuse(self, 405, "Method not allowed", nil, { Allow = "GET" }) end
  local prefix = self.prefix
  if path:sub(1, #prefix + 1) ~= prefix .. "/" then return refuse(self, 404, "Service not found") end
  local rest = path:sub(#prefix + 1)
  if rest:find(BAD_PATH) then
    -- percent-encoded characters included: no ID holds one, and an
    -- encoded slash or dot would name another path once decoded
    return refuse(self, 400, "Invalid characters in path")
  end
  if query:find(BAD_QUERY) then return refuse(self, 400, "Invalid characters in query") end
  -- "/tracks/x" as "tracks", "x"; an empty segment is a "//" or a trailing "/"
  local segs = {}
  for seg in (rest:sub(2) .. "/"):gmatch "([^/]*)/" do segs[#segs + 1] = seg end
  for i = 1, #segs do
    local seg = segs[i]
    if seg == "." or seg == ".." then return refuse(self, 400, "Invalid path") end
    if seg == "" then return refuse(self, 404, "Service not found") end
  end
  local r, id_or_status, message, near = route_of(segs)
  if not r then return refuse(self, id_or_status, message, near and near.name) end
  local id = id_or_status
  local qok, qwhy = check_query(query, r)
  if not qok then return refuse(self, 400, qwhy, r.name) end

  local env = self.env
  local url = env.api_base .. rest .. (query ~= "" and ("?" .. query) or "")
  local status, body, err
  local seen = {}
  if r.plural and id and env.batch_window and env.batch and not env.no_batch then
    status, body = in_window(self, r, id, url, query)
    if status == nil then err = body end
  else
    body, status = require("spotify.ngx").get_raw(self.client, url, r.name, seen)
    if body == nil then err = status end
  end
  if env.metrics then prometheus.flush(self.client, env) end
  if err then return failed(self, r.name, err) end
  count(self, r.name, outcome_of(status))
  send(status, body, { ["Cache-Control"] = seen.cache_control, ETag = seen.etag })
end

--- The client every request of this worker goes through (for warm-ups,
-- stats and metrics).
function Gateway:client_of()
  return self.client
end

local function check_prefix(v)
  return type(v) == "string" and v:match "^/[%w%-%._~/]*$" and not v:find "//" and v:sub(-1) ~= "/"
end

local function check_keys(v)
  if type(v) == "function" then return true end
  if type(v) ~= "table" and type(v) ~= "userdata" then return false end
  local ok, get = pcall(function() return v.get end)
  return ok and get ~= nil
end

--- Make a gateway. See the README's "The gateway".
-- @tparam table spotify the module (spotify.client makes the worker's client)
-- @tparam[opt] table opts every client option, plus `prefix` (default
-- "/v1") and `keys` (nil, a shared dict or a function(key) -> bool)
-- @return the gateway (raises on bad options)
function M.new(spotify, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("spotify.gateway: options must be a table, got " .. type(opts), 3)
  end
  local copts, prefix, keys = {}, "/v1", nil
  for k, v in pairs(opts or {}) do
    if k == "prefix" then
      if not check_prefix(v) then
        error("spotify.gateway: option 'prefix' must be a path such as \"/v1\" (no trailing slash)", 3)
      end
      prefix = v
    elseif k == "keys" then
      if not check_keys(v) then
        error("spotify.gateway: option 'keys' must be a shared dict (ngx.shared.NAME) or a function(key)", 3)
      end
      keys = v
    elseif k == "gateway" or k == "gateway_key" then
      error("spotify.gateway: option '" .. k .. "' is a client's of a gateway, not a gateway's", 3)
    else
      copts[k] = v
    end
  end
  options.resolve(copts, spotify.VERSION) -- raises here, naming the option, not at the first request
  -- Made once: a client made before nginx forks is each worker's own after
  -- it (the nginx driver opens its connections per worker, on first use).
  local client = spotify.client(copts)
  return setmetatable({ client = client, env = env_of(client), prefix = prefix, keys = keys }, Gateway)
end

return M
