--- Token cache in an nginx `lua_shared_dict`: one token for every worker.
--
--   lua_shared_dict spotify_tokens 1m;
--   local client = spotify.client{ cache = spotify.cache.shdict(ngx.shared.spotify_tokens) }
--
-- Renewal is single-flight across workers: the renewal lock is a key made
-- with `add()` (atomic in the shared dict) and a TTL, so a worker that dies
-- while renewing cannot hold it forever; the others poll the cache.
--
-- The response cache's answers (keys that start with `core.answer_prefix`)
-- are written with `safe_set`/`safe_add`: an answer never evicts anything,
-- so a dict that also holds the token and a running 429 penalty keeps them
-- however many answers come. In a full dict an answer that does not fit in
-- the room expired entries leave is not kept (a miss). Better: give answers
-- a dict of their own (`lua_shared_dict spotify_answers 16m;`) made with
-- `{answers_only = true}`, where a new answer evicts the least recently used.
-- @module spotify.cache.shdict
local core = require "spotify.core"

local Shdict = {}
Shdict.__index = Shdict

local ANSWER = core.answer_prefix

local function is_answer(key)
  return key:sub(1, #ANSWER) == ANSWER
end

local lock_serial = 0

--- spotify.cache.shdict(ngx.shared.NAME[, opts]) -> cache
-- @param dict a shared dict (`ngx.shared.NAME`)
-- @tparam[opt] table opts `answers_only = true`: the dict holds the response
-- cache's answers alone, so a full dict drops the least recently used
-- answer to make room for a new one (else an answer never evicts anything)
-- @return the cache (raises when `dict` is not a shared dict or an option is wrong)
function Shdict.new(dict, opts)
  if type(dict) ~= "table" or type(dict.add) ~= "function" or type(dict.delete) ~= "function" then
    error("spotify.cache.shdict: expected a shared dict (ngx.shared.NAME, declared with lua_shared_dict), got "
      .. type(dict), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("spotify.cache.shdict: options must be a table, got " .. type(opts), 2)
  end
  for k, v in pairs(opts or {}) do
    if k ~= "answers_only" then error("spotify.cache.shdict: unknown option '" .. tostring(k) .. "'", 2) end
    if type(v) ~= "boolean" then
      error("spotify.cache.shdict: option 'answers_only' must be a boolean, got " .. type(v), 2)
    end
  end
  return setmetatable({ dict = dict, owned = {}, evict = opts and opts.answers_only or false }, Shdict)
end

--- cache:get(key) -> value | nil
function Shdict:get(key)
  local value, err = self.dict:get(key)
  if value == nil and err then error("shared dict get: " .. err, 0) end
  if type(value) ~= "string" then return nil end
  return value
end

--- cache:set(key, value, ttl_seconds); raises when the dict refuses it.
function Shdict:set(key, value, ttl)
  local dict = self.dict
  if self.evict or not is_answer(key) then
    local ok, err = dict:set(key, value, ttl or 0)
    if not ok then error("shared dict set: " .. tostring(err), 0) end
    return
  end
  -- nginx drops expired entries at the least recently used end first
  local ok, err = dict:safe_set(key, value, ttl or 0)
  if not ok then error("shared dict set: " .. tostring(err), 0) end
end

--- cache:incr(key, delta, ttl) -> new value; a missing key starts at 0
-- with that TTL (shdict's init_ttl), an existing one keeps its own.
function Shdict:incr(key, delta, ttl)
  local v, err = self.dict:incr(key, delta, 0, ttl or 0)
  if v == nil then error("shared dict incr: " .. tostring(err), 0) end
  return v
end

--- cache:pace(penalty_key, pace_key, budget) -> start time | penalty: the
-- engine's penalty check and pacing of one request in one call. `budget`
-- is {requests, window, margin, now}, requests = 0 for the penalty alone;
-- answers the penalty's value (a string) while one holds, else the
-- request's start time (wall clock). Every worker of the server reads the
-- same clock; the engine bounds what a penalty holds by the duration in
-- it. Request k starts once request k - N started a window ago.
function Shdict:pace(penalty_key, pace_key, budget)
  local dict, now = self.dict, budget.now
  local penalty = dict:get(penalty_key)
  if type(penalty) == "string" and (tonumber(penalty:match "^%S+") or 0) > now then return penalty end
  if budget.requests < 1 then return now end
  local k, err = dict:incr(pace_key .. ":n", 1, 0, 86400)
  if k == nil then error("shared dict incr: " .. tostring(err), 0) end
  local slot = pace_key .. ":" .. (k % budget.requests)
  local start, prev = now, tonumber(dict:get(slot))
  local next_start = prev and prev + budget.window + budget.margin
  if next_start and next_start > start then start = next_start end
  local ok, why = dict:set(slot, ("%.17g"):format(start), math.ceil(2 * budget.window) + 1)
  if not ok then error("shared dict set: " .. tostring(why), 0) end
  return start
end

-- A value no other holder of the lock can have: worker pid and a counter.
local function lock_value()
  lock_serial = lock_serial + 1
  return ngx.worker.pid() .. ":" .. lock_serial
end

--- cache:lock(key, ttl) -> true if taken, false if another holds it
function Shdict:lock(key, ttl)
  local value = lock_value()
  local dict = self.dict
  local ok, err
  if not self.evict and is_answer(key) then -- an answer's lock never evicts anything either
    ok, err = dict:safe_add(key, value, ttl)
  else
    ok, err = dict:add(key, value, ttl)
  end
  if ok then
    self.owned[key] = value
    return true
  end
  if err == "exists" then return false end
  error("shared dict add: " .. tostring(err), 0)
end

--- cache:unlock(key): releases the lock only if this cache still holds it
-- (after its TTL another worker may have taken it).
function Shdict:unlock(key)
  local value = self.owned[key]
  self.owned[key] = nil
  if value ~= nil and self.dict:get(key) == value then self.dict:delete(key) end
end

return Shdict
