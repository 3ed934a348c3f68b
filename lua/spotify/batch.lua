--- batch_window: single lookups of one kind (track, album, ...) made
-- within the window go out as one batch GET. A window collects IDs and
-- their callers; the driver that parks the callers (started requests:
-- tasks.lua; nginx light threads: ngx.lua) fires it once it is full or its
-- time is up, and `settle` hands every caller its own item.
local core = require "spotify.core"
local errors = require "spotify.errors"

local null, now, add_batched = core.null, core.now, core.add_batched

local batch = {}

--- Join the open window for `spec` (made on first use) with one ID.
-- spec: {key, base (the batch URL without ids), name, max, field}; url:
-- the caller's single URL (its not_found names it).
-- @return the window, this caller's waiter
function batch.join(env, spec, id, url)
  local windows = env.windows
  if not windows then
    windows = {}
    env.windows = windows
  end
  local w = windows[spec.key]
  if not w then
    w = { spec = spec, ids = {}, pos = {}, waiters = {}, deadline = now() + env.batch_window }
    windows[spec.key] = w
  end
  if not w.pos[id] then
    w.ids[#w.ids + 1] = id
    w.pos[id] = #w.ids
  end
  local waiter = { id = id, url = url, window = w }
  w.waiters[#w.waiters + 1] = waiter
  if #w.ids >= spec.max then batch.close(env, w) end
  return w, waiter
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

--- The batch GET's URL.
function batch.url(w)
  local base = w.spec.base
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

--- Hand every caller its own item of the batch answer (`value` or nil,
-- err). Where the batch endpoint is refused (403/404: Development Mode),
-- every caller goes out singly (waiter.single), and so do later lookups.
function batch.settle(self, env, w, value, err)
  w.done = true
  local list, given = nil, {}
  if value == nil and (err.kind == "forbidden" or err.kind == "not_found") then
    env.no_batch = true
    for _, waiter in ipairs(w.waiters) do waiter.single, waiter.done = true, true end
    return
  end
  if value ~= nil then
    list = value[w.spec.field]
    if type(list) ~= "table" then
      value, err = nil, errors.new("decode", { message = "batch answer has no '" .. w.spec.field .. "' array",
        method = "GET", url = batch.url(w) })
    end
  end
  if value ~= nil then add_batched(self, #w.waiters) end
  for _, waiter in ipairs(w.waiters) do
    waiter.done = true
    if value == nil then
      waiter.err = copy(err)
    else
      local item = list[w.pos[waiter.id]]
      if item == nil or item == null then
        waiter.err = errors.new("not_found", { status = 404, message = "non existing id", method = "GET",
          url = waiter.url })
      else
        waiter.value = given[item] and copy(item) or item
        given[item] = true
      end
    end
  end
end

return batch
