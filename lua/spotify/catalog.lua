--- Turns the rows of endpoints.lua into client methods: one generic call
-- path for single items, lists without an ID, and plural methods that
-- split IDs into batches fetched concurrently.
local batch = require "spotify.batch"
local core = require "spotify.core"
local endpoints = require "spotify.endpoints"
local errors = require "spotify.errors"

local parse_id, parse_ids_of, query = core.parse_id, core.parse_ids, core.query

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
  if value ~= nil or not row.fallback or not batch.refused(err) then return value, err end
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

-- How batch.lua asks for IDs of a plural row with `opts`: the batch URL
-- (a window's base; a plural call's for each batch, as url_for makes it)
-- and each (parsed) ID's single URL, the row's URL split around the ID.
local function spec_of(env, row, opts)
  local base, why = url_for(env, row, row.path, nil, opts)
  if not base then return nil, why end
  local before, after -- made on first use: most plural calls need no single URL
  return { key = base, base = base, name = public_name[row.name] or row.name, single_name = single_name[row.name],
    max = row.batch.max, field = row.batch.key,
    -- a plural call's batches are sent before it returns: `opts` as given
    url = function(ids) return url_for(env, row, row.path, nil, opts, { ids = ids }) end,
    single = function(id)
      if not before then
        local template = url_for(env, row, row.batch.single, "{id}", opts)
        local at = template:find("{id}", #env.api_base + 1, true)
        before, after = template:sub(1, at - 1), template:sub(at + 4)
      end
      return before .. id .. after
    end }
end

-- One lookup in a window (batch_window), where its caller can be parked
-- (ctx.batch_lookup). Returns value | nil, err, or nil, nil, true to go
-- out singly.
local function in_window(ctx, self, env, row, plural, id, opts)
  local spec = spec_of(env, plural, opts)
  if not spec then return nil, nil, true end
  local cached = core.peek(self, spec.single(id), row.name) -- the response cache first: no window, no request
  if cached then return cached end
  local waiters = ctx.batch_lookup(self, env, spec, { id })
  if not waiters or waiters[1].single then return nil, nil, true end
  return batch.outcome(waiters[1])
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

-- A plural call: its IDs in the windows of their kind with the single
-- lookups of others (batch_window, where callers can be parked), else in
-- concurrent batch GETs of ?ids=a,b,c, or one GET per ID without batch
-- endpoints; batch.lua decides the Development-Mode fallback.
local function plural_method(ctx, row)
  return function(self, ids, opts)
    local env, err = ctx.env_of(self)
    if not env then return nil, err end
    local parsed, why = parse_ids(ctx, ids, row.id)
    if not parsed then return nil, why end
    local ok, oerr = check_opts(ctx, opts)
    if not ok then return nil, oerr end
    if #parsed == 0 then return {} end
    local spec, serr = spec_of(env, row, opts)
    if not spec then return nil, ctx.invalid(serr) end
    if not env.batch or env.no_batch then return batch.singly(self, env, spec, parsed, ctx.get_all) end
    local waiters = env.batch_window and row.name ~= "audio_features_batch"
      and ctx.batch_lookup(self, env, spec, parsed)
    for _, waiter in ipairs(waiters or {}) do
      if waiter.single then
        waiters = nil
        break
      end
    end
    if waiters then return batch.list(waiters) end
    return batch.get(self, env, spec, parsed, ctx.get_all)
  end
end

--- The name a row's GETs go by in the response cache's ttl table.
function catalog.method_name(row)
  return public_name[row.name] or row.name
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

--- The plural rows by the name of their single lookup (track -> tracks):
-- the rows whose single lookups may share a batch window.
function catalog.plurals()
  local plural_of = {}
  for _, row in ipairs(endpoints) do
    if row.batch and row.name ~= "audio_features_batch" then plural_of[single_name[row.name]] = row end
  end
  return plural_of
end

--- Add one method per endpoint row to `methods`.
function catalog.install(methods, ctx)
  local by_name, plural_of = {}, catalog.plurals()
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
