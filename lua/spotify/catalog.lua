--- Turns the rows of endpoints.lua into client methods: one generic call
-- path for single items, lists without an ID, and plural methods that
-- split IDs into batches fetched concurrently.
local core = require "spotify.core"
local endpoints = require "spotify.endpoints"
local errors = require "spotify.errors"

local parse_id, parse_ids_of, query = core.parse_id, core.parse_ids, core.query
local null = core.null

local catalog = {}

-- The public method name a row's GETs go by (the response cache's ttl
-- table uses these), and that of the single lookups of a plural row.
local public_name = { audio_feature = "audio_features", audio_features_batch = "audio_features" }
local single_name = {
  tracks = "track", albums = "album", artists = "artist", shows = "show", episodes = "episode",
  audiobooks = "audiobook", chapters = "chapter", audio_features_batch = "audio_features",
}

-- A path template split once around its {id}: a concatenation per call
-- instead of a pattern substitution.
local around_id = setmetatable({}, { __index = function(parts, path)
  local at = path:find("{id}", 1, true)
  local p = at and { path:sub(1, at - 1), path:sub(at + 4) } or false
  parts[path] = p
  return p
end })

local function url_for(env, row, path, id, opts, extra)
  local p = id and around_id[path]
  local url = env.api_base .. (p and p[1] .. id .. p[2] or path)
  local q
  if row.defaults or (row.market and env.market) or (opts and next(opts)) or extra then
    q = {}
    if row.defaults then for k, v in pairs(row.defaults) do q[k] = v end end
    if row.market then q.market = env.market end
    if opts then for k, v in pairs(opts) do q[k] = v end end
    if extra then for k, v in pairs(extra) do q[k] = v end end
  end
  if q == nil or next(q) == nil then return url end
  local qs, why = query(q)
  if not qs then return nil, why end
  return url .. "?" .. qs
end

-- The single URL of every (parsed) ID in one core call: the row's URL
-- with a marker for the ID, split around it.
local function single_urls(env, row, path, ids, opts)
  local template, why = url_for(env, row, path, "{id}", opts)
  if not template then return nil, why end
  local at = template:find("{id}", #env.api_base + 1, true)
  local _, urls = parse_ids_of(ids, row.id, template:sub(1, at - 1), template:sub(at + 4))
  return urls
end

local function unavailable(err)
  return err.kind == "forbidden" or err.kind == "not_found"
end

local function unwrap(row, value, url)
  if not row.unwrap then return value end
  local inner = value[row.unwrap]
  if inner == nil then
    return nil, errors.new("decode", { message = "answer has no '" .. row.unwrap .. "' field",
      method = "GET", url = url })
  end
  return inner
end

-- GET one path of a row and unwrap the answer.
local function get_path(ctx, self, env, row, path, id, opts, extra)
  local url, why = url_for(env, row, path, id, opts, extra)
  if not url then return nil, ctx.invalid(why) end
  local value, err = ctx.get(self, env, url, public_name[row.name] or row.name)
  if value == nil then return nil, err end
  return unwrap(row, value, url)
end

-- GET a row; a row with a `fallback` path tries it on 403/404 and, once
-- the fallback answers, keeps using it for the client's life. An unknown
-- ID fails on both paths and so switches nothing.
local function fetch(ctx, self, env, row, id, opts, extra)
  if row.fallback and env.use_fallback and env.use_fallback[row.name] then
    return get_path(ctx, self, env, row, row.fallback, id, opts, extra)
  end
  local value, err = get_path(ctx, self, env, row, row.path, id, opts, extra)
  if value ~= nil or not row.fallback or not unavailable(err) then return value, err end
  local fvalue = get_path(ctx, self, env, row, row.fallback, id, opts, extra)
  if fvalue == nil then return nil, err end
  env.use_fallback = env.use_fallback or {}
  env.use_fallback[row.name] = true
  return fvalue
end

local function check_opts(ctx, opts)
  if opts ~= nil and type(opts) ~= "table" then
    return nil, ctx.invalid("opts must be a table, got " .. type(opts))
  end
  return true
end

-- With batch_window: lookups join the windows of their kind and options,
-- where their callers can be parked (ctx.batch_lookup). The window's spec
-- and each ID's single URL (its not_found names it), or nil.
local function window_of(env, plural, opts, ids)
  local base = url_for(env, plural, plural.path, nil, opts)
  if not base then return nil end
  local urls = single_urls(env, { name = plural.name, market = plural.market, id = plural.id },
    plural.batch.single, ids, opts)
  if not urls then return nil end
  return { key = base, base = base, name = plural.name, max = plural.batch.max, field = plural.batch.key }, urls
end

-- One lookup in a window. Returns value | nil, err, or nil, nil, true to
-- go out singly.
local function in_window(ctx, self, env, row, plural, id, opts)
  local spec, urls = window_of(env, plural, opts, { id })
  if not spec then return nil, nil, true end
  local cached = core.peek(self, urls[1], row.name) -- the response cache first: no window, no request
  if cached then return cached end
  local waiters = ctx.batch_lookup(self, env, spec, { id }, urls)
  if not waiters or waiters[1].single then return nil, nil, true end
  return waiters[1].value, waiters[1].err
end

-- A plural call's IDs in the windows, with the single lookups of others.
-- Returns the array | nil, err, or nil, nil, true to go the usual way.
local function plural_in_window(ctx, self, env, row, ids, opts)
  local spec, urls = window_of(env, row, opts, ids)
  local waiters = spec and ctx.batch_lookup(self, env, spec, ids, urls)
  if not waiters then return nil, nil, true end
  local out = {}
  for i, w in ipairs(waiters) do
    if w.single then return nil, nil, true end
    if w.value ~= nil then
      out[i] = w.value
    elseif w.err.kind == "not_found" then
      out[i] = null
    else
      return nil, w.err
    end
  end
  return out
end

local function single_method(ctx, row, plural)
  return function(self, id, opts)
    local env, err = ctx.env_of(self)
    if not env then return nil, err end
    local pid, why = parse_id(id, row.id)
    if not pid then return nil, ctx.invalid(why) end
    local ok, oerr = check_opts(ctx, opts)
    if not ok then return nil, oerr end
    if plural and env.batch_window and env.batch and not env.no_batch then
      local value, berr, single = in_window(ctx, self, env, row, plural, pid, opts)
      if not single then return value, berr end
    end
    return fetch(ctx, self, env, row, pid, opts)
  end
end

local function list_method(ctx, row)
  return function(self, opts)
    local env, err = ctx.env_of(self)
    if not env then return nil, err end
    local ok, oerr = check_opts(ctx, opts)
    if not ok then return nil, oerr end
    return fetch(ctx, self, env, row, nil, opts)
  end
end

local function query_method(ctx, row)
  return function(self, q, opts)
    local env, err = ctx.env_of(self)
    if not env then return nil, err end
    if type(q) ~= "string" or q == "" then
      return nil, ctx.invalid(row.query .. " must be a non-empty string")
    end
    local ok, oerr = check_opts(ctx, opts)
    if not ok then return nil, oerr end
    return fetch(ctx, self, env, row, nil, opts, { [row.query] = q })
  end
end

local function parse_ids(ctx, ids, kind)
  if type(ids) ~= "table" then return nil, ctx.invalid(kind .. " ids must be a list, got " .. type(ids)) end
  local out, why = parse_ids_of(ids, kind)
  if not out then return nil, ctx.invalid(why) end
  return out
end

-- Batch requests: ceil(#ids / max) concurrent GETs of ?ids=a,b,c.
local function by_batches(ctx, self, env, row, ids, opts)
  local urls, max = {}, row.batch.max
  for first = 1, #ids, max do
    local chunk = {}
    for i = first, math.min(first + max - 1, #ids) do chunk[#chunk + 1] = ids[i] end
    local url, why = url_for(env, row, row.path, nil, opts, { ids = chunk })
    if not url then return nil, ctx.invalid(why) end
    urls[#urls + 1] = url
  end
  local out, values, errs = {}, ctx.get_all(self, env, urls, public_name[row.name] or row.name)
  for c = 1, #urls do
    local value = values[c]
    if value == nil then return nil, errs[c] end
    local list = value[row.batch.key]
    if type(list) ~= "table" then
      return nil, errors.new("decode", { message = "batch answer has no '" .. row.batch.key .. "' array",
        method = "GET", url = urls[c] })
    end
    local base = (c - 1) * max
    for i = 1, math.min(max, #ids - base) do
      local v = list[i]
      out[base + i] = v == nil and null or v
    end
  end
  return out
end

-- The same result from one GET per ID (apps without batch endpoints).
local function one_by_one(ctx, self, env, row, ids, opts)
  local urls, why = single_urls(env, { name = row.name, market = row.market, id = row.id },
    row.batch.single, ids, opts)
  if not urls then return nil, ctx.invalid(why) end
  local out, values, errs = {}, ctx.get_all(self, env, urls, single_name[row.name])
  for i = 1, #urls do
    if values[i] ~= nil then
      out[i] = values[i]
    elseif errs[i].kind == "not_found" then
      out[i] = null
    else
      return nil, errs[i]
    end
  end
  return out
end

local function all_null(list)
  for i = 1, #list do
    if list[i] ~= null then return false end
  end
  return true
end

local function plural_method(ctx, row)
  return function(self, ids, opts)
    local env, err = ctx.env_of(self)
    if not env then return nil, err end
    local parsed, why = parse_ids(ctx, ids, row.id)
    if not parsed then return nil, why end
    local ok, oerr = check_opts(ctx, opts)
    if not ok then return nil, oerr end
    if #parsed == 0 then return {} end
    if env.batch_window and row.name ~= "audio_features_batch" and env.batch and not env.no_batch then
      local out, werr, alone = plural_in_window(ctx, self, env, row, parsed, opts)
      if not alone then return out, werr end
    end
    if not env.batch or env.no_batch then return one_by_one(ctx, self, env, row, parsed, opts) end
    local out, berr = by_batches(ctx, self, env, row, parsed, opts)
    if out or not unavailable(berr) then return out, berr end
    local out1, err1 = one_by_one(ctx, self, env, row, parsed, opts)
    -- A 404 for the batch and for every item: the endpoint is not served.
    if out1 and berr.kind == "not_found" and all_null(out1) then return nil, berr end
    -- Batch refused but single items served: an app without batch
    -- endpoints (Development Mode), so skip them from now on. When the
    -- single items are refused too, the endpoint itself is restricted
    -- (audio features) and says nothing about the other batch endpoints.
    if out1 then env.no_batch = true end
    return out1, err1
  end
end

--- The plural rows as the response cache keeps their answers per item
-- (core.responses_batches): the name their GETs go by, the single
-- lookup's name and path, the answer's array.
function catalog.batch_rows()
  local rows = {}
  for _, row in ipairs(endpoints) do
    if row.batch then
      rows[#rows + 1] = { name = public_name[row.name] or row.name, single = single_name[row.name],
        path = row.path, single_path = row.batch.single, field = row.batch.key }
    end
  end
  return rows
end

--- Add one method per endpoint row to `methods`.
function catalog.install(methods, ctx)
  local by_name, plural_of = {}, {}
  for _, row in ipairs(endpoints) do
    if row.batch and row.name ~= "audio_features_batch" then plural_of[single_name[row.name]] = row end
  end
  for _, row in ipairs(endpoints) do
    by_name[row.name] = row
    local make
    if row.batch then
      make = plural_method
    elseif row.id then
      make = single_method
    elseif row.query then
      make = query_method
    else
      make = list_method
    end
    methods[row.name] = make(ctx, row, plural_of[row.name])
  end
  -- audio_features takes one ID (one object back) or a list (an array).
  local one, many = methods.audio_feature, methods.audio_features_batch
  methods.audio_feature, methods.audio_features_batch = nil, nil
  methods.audio_features = function(self, id_or_ids, opts)
    if type(id_or_ids) == "table" then return many(self, id_or_ids, opts) end
    return one(self, id_or_ids, opts)
  end
  return by_name
end

return catalog
