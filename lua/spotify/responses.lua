--- The response cache (`spotify.responses{...}`): its option checks. The
-- entries and every decision about them live in the C core (responses.c,
-- engine.c); this module only turns options into a core object.
local core = require "spotify.core"

local responses = {}

local batch_rows = require("spotify.catalog").batch_rows()

-- What a process-tier hit hands out: a copy of the decoded answer. Only
-- the tables are copied (a shape, found once per answer, says where they
-- are); LuaJIT's table.clone copies each in one go.
local null = core.null
local has_clone, clone = pcall(require, "table.clone")
if not has_clone then
  clone = function(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
  end
end
local shapes = setmetatable({}, { __mode = "k" }) -- answer -> shape; a shape never refers to its answer

local function shape_of(t)
  local s
  for k, v in pairs(t) do
    if type(v) == "table" and v ~= null then
      s = s or {}
      s[k] = shape_of(v)
    end
  end
  return s or false
end

local function copy(t, shape)
  local c = clone(t)
  if shape then
    for k, s in pairs(shape) do c[k] = copy(t[k], s) end
  end
  return c
end

core.responses_copier(function(t)
  local s = shapes[t]
  if s == nil then
    s = shape_of(t)
    shapes[t] = s
  end
  return copy(t, s)
end)

local function fail(what, got)
  error(("spotify.responses: %s, got %s"):format(what,
    type(got) == "string" and ("%q"):format(got) or type(got)), 4)
end

local function seconds(v)
  return type(v) == "number" and v == v and v >= 0 and v ~= math.huge
end

local checks = {
  store = function(v)
    local t = type(v)
    local ok, get, set = pcall(function() return v.get, v.set end)
    if (t ~= "table" and t ~= "userdata") or not ok or get == nil or set == nil then
      fail("option 'store' must be a cache object (a table with get and set)", v)
    end
  end,
  ttl = function(v)
    if seconds(v) then return end
    local want = "option 'ttl' must be seconds (a number of at least 0) or a table of them by method name"
    if type(v) ~= "table" then fail(want, v) end
    for k, s in pairs(v) do
      if type(k) ~= "string" or not seconds(s) then fail(want, s) end
    end
  end,
  lru = function(v)
    if type(v) ~= "number" or v % 1 ~= 0 or v < 0 or v > 1e7 then
      fail("option 'lru' must be a whole number from 0 to 10000000", v)
    end
  end,
  stale_if_error = function(v)
    if not seconds(v) then fail("option 'stale_if_error' must be seconds (a number of at least 0)", v) end
  end,
  stale_while_revalidate = function(v)
    if not seconds(v) then
      fail("option 'stale_while_revalidate' must be seconds (a number of at least 0)", v)
    end
  end,
  max_ttl = function(v)
    if not seconds(v) then fail("option 'max_ttl' must be seconds (a number of at least 0)", v) end
  end,
  max_entry_bytes = function(v)
    if type(v) ~= "number" or v % 1 ~= 0 or v < 1 or v > 2 ^ 53 then
      fail("option 'max_entry_bytes' must be a whole number of bytes above 0", v)
    end
  end,
  lru_bytes = function(v)
    if type(v) ~= "number" or v % 1 ~= 0 or v < 0 or v > 2 ^ 53 then
      fail("option 'lru_bytes' must be a whole number of bytes, at least 0", v)
    end
  end,
}

-- Defaults: an answer is fresh a day at most, whatever ttl or max-age
-- says; the process tier holds 32 MiB of JSON text at most.
local MAX_TTL, LRU_BYTES = 86400, 32 * 1024 * 1024

--- Make a response cache. syntax: `responses = spotify.responses{store, ttl, lru, stale_if_error,
-- stale_while_revalidate, max_ttl, max_entry_bytes, lru_bytes}`
-- @tparam[opt] table opts `store` (a cache object: the shared tier), `ttl`
-- (seconds, or a table of them by method name with `default`), `lru`
-- (answers kept in this process, default 1000), `stale_if_error` (seconds),
-- `stale_while_revalidate` (seconds an expired answer is handed out while one
-- request renews it),
-- `max_ttl` (caps every ttl, default 86400), `max_entry_bytes` (a longer
-- answer is handed out, not kept; default: the client's max_body bounds
-- every answer), `lru_bytes` (JSON text the process tier holds, default 32 MiB)
-- @return the response cache (raises on bad options)
function responses.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then fail("options must be a table", opts) end
  for k, v in pairs(opts) do
    local check = checks[k]
    if not check then error("spotify.responses: unknown option '" .. tostring(k) .. "'", 2) end
    check(v)
  end
  local ttl = opts.ttl
  if type(ttl) == "table" then -- a copy: later changes to the caller's table change nothing
    local t = {}
    for k, v in pairs(ttl) do t[k] = v end
    ttl = t
  end
  local r = core.responses(opts.store, ttl, opts.lru or 1000, opts.stale_if_error or 0,
    opts.max_ttl or MAX_TTL, opts.max_entry_bytes or 0, opts.lru_bytes or LRU_BYTES,
    opts.stale_while_revalidate or 0)
  -- A batch answer is kept per item, under the key of each single lookup.
  core.responses_batches(r, batch_rows)
  return r
end

return responses
