--- Batches of IDs: the one owner of how IDs of one kind go out together,
-- for plural calls and for batch windows (batch_window) alike. Here: the
-- windows (which IDs and callers, when full, when due), the answer's array,
-- each caller's item or its not_found, and the Development-Mode fallback.
-- The drivers that park the callers of a window (tasks.lua: started
-- requests; ngx.lua: light threads) decide only when and where a window's
-- `send` runs; `get_all` is how the caller's driver GETs URLs.
--
-- A spec (catalog.lua makes one per kind and options):
--   key     windows of one key collect together
--   base    the batch URL without ids (windows); url(ids): a plural call's
--           batch URL for a list of IDs
--   single(id)   the URL of one ID's single lookup
--   name, single_name   the API method names of the batch and single GETs
--   max     IDs per batch GET; field: the answer's array
local core = require "spotify.core"
local errors = require "spotify.errors"

local null, now, add_batched = core.null, core.now, core.add_batched
local unpack = table.unpack or unpack -- luacheck: ignore 113 143

local batch = {}

local function window(spec, deadline)
  return { spec = spec, ids = {}, pos = {}, waiters = {}, deadline = deadline }
end

-- A caller of w for `id`; a window asks for each ID once.
local function add(w, id)
  local pos = w.pos[id]
  if not pos then
    pos = #w.ids + 1
    w.ids[pos], w.pos[id] = id, pos
  end
  local waiter = { id = id, pos = pos, window = w }
  w.waiters[#w.waiters + 1] = waiter
  return waiter
end

--- Join the open window for `spec` (made on first use) with one ID.
-- @return the window, this caller's waiter, whether this caller opened it
function batch.join(env, spec, id)
  local windows = env.windows
  if not windows then
    windows = {}
    env.windows = windows
  end
  local w, opened = windows[spec.key], false
  if not w then
    w, opened = window(spec, now() + env.batch_window), true
    windows[spec.key] = w
  end
  local waiter = add(w, id)
  if #w.ids >= spec.max then batch.close(env, w) end
  return w, waiter, opened
end

--- No more IDs join w.
function batch.close(env, w)
  if env.windows and env.windows[w.spec.key] == w then env.windows[w.spec.key] = nil end
  w.closed = true
end

--- Windows whose time is up are closed and returned; also the seconds
-- until the next one is due (nil: none open).
function batch.due(env)
  local windows = env.windows
  if not windows or next(windows) == nil then return {}, nil end
  local t, due, soonest = now(), {}, nil
  for _, w in pairs(windows) do
    if w.deadline <= t then
      due[#due + 1] = w
    elseif not soonest or w.deadline - t < soonest then
      soonest = w.deadline - t
    end
  end
  for _, w in ipairs(due) do batch.close(env, w) end
  return due, soonest
end

--- The batch GET's URL: a window's, or that of a plural call's batch.
function batch.url(w)
  local spec = w.spec
  if not w.deadline then return spec.url(w.ids) end
  local base = spec.base
  return base .. (base:find("?", 1, true) and "&" or "?") .. "ids=" .. table.concat(w.ids, ",")
end

-- A fresh copy of a decoded item or an error: a caller may change what it
-- gets. Metatables (an error's, lua-cjson's array marker) are kept.
local function copy(v)
  if type(v) ~= "table" or v == null then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return setmetatable(t, getmetatable(v))
end

-- Every caller of w gets its ID's outcome: items[pos] (a value; null or
-- nil: not found; an error) or the error `err` (a fresh copy each). A
-- plural call's batch (w.call) puts its items in place in the call's
-- array and keeps the call's first error.
local function settle(w, items, err)
  local call = w.call
  if call then
    local out, first = call.out, w.first
    if err then items = { err, failed = true } end
    local failed = items.failed -- only then can an item be an error
    for k = 1, err and 1 or #w.ids do
      local item = items[k]
      if item == nil then item = null end
      if failed and item ~= null and errors.is(item) and first + k < call.at then
        call.err, call.at = item, first + k
      end
      out[first + k] = item
    end
    return
  end
  local given = {}
  for _, waiter in ipairs(w.waiters) do
    local item = err or items[waiter.pos]
    if item == nil or item == null then
      waiter.missing = true
    elseif errors.is(item) then
      waiter.err = copy(item)
    else
      waiter.value = given[item] and copy(item) or item
      given[item] = true
    end
    waiter.done = true
  end
end

--- Is err an endpoint refused to this app (403 or 404: Development
-- Mode, a tier's restriction)?
function batch.refused(err)
  return err.kind == "forbidden" or err.kind == "not_found"
end

-- One GET per ID of `ids`. @return each ID's item: a value, null (not
-- found) or an error
local function one_by_one(self, env, spec, ids, get_all)
  local urls = {}
  for i, id in ipairs(ids) do urls[i] = spec.single(id) end
  local values, errs = get_all(self, env, urls, spec.single_name)
  local items = {}
  for i = 1, #urls do
    local err = errs[i]
    if values[i] ~= nil then
      items[i] = values[i]
    elseif err.kind == "not_found" then
      items[i] = null
    else
      items[i], items.failed = err, true
    end
  end
  return items
end

-- The Development-Mode fallback, decided here for plural calls and windows
-- alike: the IDs of refused batch GETs ({w, err}) are asked one by one.
-- Answered so (found or not found), the app lacks the batch endpoints:
-- remembered for the client's life (env.no_batch). A 404 for the batch and
-- for every item: the endpoint itself is not served, the batch's error
-- stands. Single lookups refused too: the endpoint is restricted (audio
-- features), which says nothing about the other batch endpoints.
local function fall_back(self, env, refusals, get_all)
  local ids = {}
  for _, r in ipairs(refusals) do
    for _, id in ipairs(r.w.ids) do ids[#ids + 1] = id end
  end
  local items = one_by_one(self, env, refusals[1].w.spec, ids, get_all)
  local served, found = not items.failed, false
  for i = 1, #items do
    if items[i] ~= null then found = true end
  end
  local first = 0
  for _, r in ipairs(refusals) do
    if served and not found and r.err.kind == "not_found" then
      settle(r.w, nil, r.err)
    else
      settle(r.w, { failed = items.failed, unpack(items, first + 1, first + #r.w.ids) })
      if served then env.no_batch = true end
    end
    first = first + #r.w.ids
  end
end

--- Send closed windows: their batch GETs at once, each caller handed its
-- own item (a refused batch through the fallback above).
function batch.send(self, env, ws, get_all)
  local urls = {}
  for i, w in ipairs(ws) do
    w.sent = true
    urls[i] = batch.url(w)
  end
  local values, errs = get_all(self, env, urls, ws[1].spec.name)
  local refusals = {}
  for i, w in ipairs(ws) do
    local value, err = values[i], errs[i]
    local list = value ~= nil and value[w.spec.field]
    if value ~= nil and type(list) ~= "table" then
      err = errors.new("decode", { message = "batch answer has no '" .. w.spec.field .. "' array",
        method = "GET", url = urls[i] })
    end
    if value ~= nil and not err then
      if w.deadline then add_batched(self, #w.waiters) end -- lookups of a window
      settle(w, list)
    elseif batch.refused(err) then
      refusals[#refusals + 1] = { w = w, err = err }
    else
      settle(w, nil, err)
    end
  end
  if #refusals > 0 then fall_back(self, env, refusals, get_all) end
end

-- The one not_found of an ID the answer does not hold: it names the
-- ID's single URL, as a single lookup's would.
local function not_found(waiter)
  return errors.new("not_found", { status = 404, message = "non existing id", method = "GET",
    url = waiter.window.spec.single(waiter.id) })
end

--- One caller's outcome: its item, or nil, err.
function batch.outcome(waiter)
  if waiter.missing then return nil, not_found(waiter) end
  return waiter.value, waiter.err
end

--- The callers' items as a plural call returns them (spotify.null where
-- not found), or nil, the first error.
function batch.list(waiters)
  local out = {}
  for i, waiter in ipairs(waiters) do
    if waiter.missing then
      out[i] = null
    elseif waiter.err then
      return nil, waiter.err
    else
      out[i] = waiter.value
    end
  end
  return out
end

-- A plural call's array, or nil, its first error.
local function result(call)
  if call.err then return nil, call.err end
  return call.out
end

--- A plural call without a window: its IDs in batches of spec.max, sent
-- at once. @return the items in the IDs' order (spotify.null where not
-- found), or nil, the first error
function batch.get(self, env, spec, ids, get_all)
  local call, ws = { out = {}, at = math.huge }, {}
  for first = 1, #ids, spec.max do
    local chunk = {}
    for i = first, math.min(first + spec.max - 1, #ids) do chunk[#chunk + 1] = ids[i] end
    ws[#ws + 1] = { spec = spec, ids = chunk, call = call, first = first - 1 }
  end
  batch.send(self, env, ws, get_all)
  return result(call)
end

--- The same from one GET per ID (batch = false; an app without batch
-- endpoints).
function batch.singly(self, env, spec, ids, get_all)
  local call = { out = {}, at = math.huge }
  settle({ spec = spec, ids = ids, call = call, first = 0 }, one_by_one(self, env, spec, ids, get_all))
  return result(call)
end

return batch
