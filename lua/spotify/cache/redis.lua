--- Token cache in Redis, shared by every process on every machine that
-- reaches the same server.
--
--   local redis = require "redis"                    -- lua-redis
--   local cache = spotify.cache.redis(redis.connect("127.0.0.1", 6379))
--
-- or, inside OpenResty, a connected resty.redis / nginx.redis object.
-- Entries live under `prefix .. key` with the TTL the token layer asks for
-- (`SET key value EX ttl`). Renewal is single-flight across machines:
-- `SET lock owner NX PX ttl` with an owner value unique to this lock, and a
-- compare-and-delete script so only the owner releases it.
--
-- Every failure (server down, timeout, a reply that is not what the command
-- answers) is raised; the token layer counts it in `cache_errors` and
-- fetches its own token. A connection that failed is never used again, since
-- a late reply would otherwise be read as the answer to the next command;
-- with `opts.connect` the cache opens a new one on its next use.

local Redis = {}
Redis.__index = Redis

-- Deletes the lock only while it still holds our owner value: a lock that
-- expired and was taken by another process must stay theirs.
local UNLOCK_SCRIPT = [[
if redis.call("get", KEYS[1]) == ARGV[1] then
  return redis.call("del", KEYS[1])
end
return 0
]]

-- INCRBYFLOAT, and a TTL only for a key that has none yet (one it just
-- created): atomic, as the cache contract's incr.
local INCR_SCRIPT = [[
local v = redis.call("incrbyfloat", KEYS[1], ARGV[1])
if redis.call("pttl", KEYS[1]) < 0 and tonumber(ARGV[2]) > 0 then
  redis.call("pexpire", KEYS[1], ARGV[2])
end
return v
]]

-- The shared penalty and one request's place in the sliding window, in one
-- round trip (the engine's pace; see cache:pace), on the server's clock
-- (TIME): the machines of a fleet may disagree about the time, the server
-- is one. KEYS[1]: the penalty; KEYS[2]: a hash of the counter (`n`) and
-- the N start-time slots, in server time. Both keys carry the budget key
-- as their hash tag, so a cluster runs the script on one node. ARGV:
-- requests (0: the penalty alone), window, margin, the longest penalty.
-- A penalty answers {"penalty", value, ms left}: its time left is the
-- key's TTL, so the writer's clock does not matter. A penalty set with no
-- TTL (by hand) is given one, from the end it names; every penalty is cut
-- to the longest there is. Else {"start", s}: how long
-- after now the request starts. Request k starts once request k - N
-- started a window ago.
local PACE_SCRIPT = [[
local t = redis.call("time")
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local max_ms = tonumber(ARGV[4]) * 1000
local penalty = redis.call("get", KEYS[1])
if penalty then
  local left = redis.call("pttl", KEYS[1])
  local fix = left < 0 or left > max_ms
  if left < 0 then
    local ends = tonumber(string.match(penalty, "^%S+"))
    left = ends and ends - now < math.huge and math.floor((ends - now) * 1000) or 0
  end
  if left > max_ms then left = max_ms end
  if left > 0 then
    if fix then redis.call("pexpire", KEYS[1], left) end
    return {"penalty", penalty, left}
  end
end
local n, w, margin = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if n < 1 then return {"start", "0"} end
local slot = redis.call("hincrby", KEYS[2], "n", 1) % n
local prev = tonumber(redis.call("hget", KEYS[2], slot))
local start = now
if prev and prev + w + margin > start then start = prev + w + margin end
redis.call("hset", KEYS[2], slot, string.format("%.17g", start))
local life = math.ceil((start - now + 2 * w + 1) * 1000)
if redis.call("pttl", KEYS[2]) < life then redis.call("pexpire", KEYS[2], life) end
return {"start", string.format("%.17g", start - now)}
]]

local function has_commands(v)
  return type(v.get) == "function" and type(v.set) == "function" and type(v.eval) == "function"
end

local function is_connection(v)
  local t = type(v)
  if t ~= "table" and t ~= "userdata" then return false end
  local ok, yes = pcall(has_commands, v) -- a userdata may refuse indexing
  return ok and yes
end

-- resty.redis (and Debian's nginx.redis) answer `res, err` and a null
-- sentinel for misses; lua-redis raises and answers nil for misses.
local function dialect_of(conn)
  if type(conn.set_keepalive) == "function" or type(conn.read_reply) == "function" then
    return "resty"
  end
  return "lua-redis"
end

-- Take `conn` as the connection, with the cache's timeout.
local function adopt(self, conn)
  local t = self.timeout
  if t then
    if dialect_of(conn) == "resty" then
      if type(conn.set_timeout) == "function" then conn:set_timeout(t * 1000) end
    elseif type(conn.network) == "table" and conn.network.socket then
      conn.network.socket:settimeout(t)
    end
  end
  self.conn = conn
end

--- spotify.cache.redis(connection, opts) -> cache
-- @param connection an open lua-redis or resty.redis connection, or nil
--   when `opts.connect` is given
-- @tparam[opt] table opts `prefix` (default "spotify:") put before every
--   key; `connect`, a function returning a new open connection, called when
--   there is none or the last one failed; `timeout`, seconds (default 1) set
--   on every connection the cache uses so a hung server cannot hold a
--   request, or false to leave the connection's own timeout alone
-- @return the cache (raises on wrong arguments)
function Redis.new(connection, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("spotify.cache.redis: opts must be a table", 2) end
  local prefix = opts.prefix == nil and "spotify:" or opts.prefix
  if type(prefix) ~= "string" then error("spotify.cache.redis: prefix must be a string", 2) end
  if opts.connect ~= nil and type(opts.connect) ~= "function" then
    error("spotify.cache.redis: connect must be a function", 2)
  end
  local timeout = opts.timeout == nil and 1 or opts.timeout
  if timeout ~= false and (type(timeout) ~= "number" or timeout <= 0) then
    error("spotify.cache.redis: timeout must be a positive number or false", 2)
  end
  if connection ~= nil and not is_connection(connection) then
    error("spotify.cache.redis: expected a redis connection (lua-redis or resty.redis)", 2)
  end
  if connection == nil and opts.connect == nil then
    error("spotify.cache.redis: needs a connection or opts.connect", 2)
  end
  local self = setmetatable({ connect = opts.connect, prefix = prefix, timeout = timeout, owners = {} }, Redis)
  if connection then adopt(self, connection) end
  return self
end

-- The connection to use now; raises when there is none.
local function connection(self)
  if self.conn then return self.conn end
  if not self.connect then error("redis: connection lost", 0) end
  local ok, conn, err = pcall(self.connect)
  if not ok or not is_connection(conn) then
    error("redis: cannot connect: " .. tostring(ok and (err or conn) or conn), 0)
  end
  adopt(self, conn)
  return conn
end

-- Close a connection that failed and forget it.
local function drop(self)
  local conn = self.conn
  self.conn = nil
  if not conn then return end
  if dialect_of(conn) == "resty" then
    pcall(conn.close, conn)
  elseif type(conn.network) == "table" and conn.network.socket then
    pcall(conn.network.socket.close, conn.network.socket)
  end
end


-- A reply that stands for "nothing": lua-redis nil, resty's ngx.null
-- (a light userdata), false.
local function is_null(v)
  return v == nil or v == false or type(v) == "userdata"
end

-- Send one command; returns its reply, or nil, the failure (the
-- connection is then closed and forgotten, unless the failure holds
-- `fine`: an error reply that leaves the connection in step).
local function run(self, fine, name, ...)
  local conn = connection(self)
  -- An nginx cosocket belongs to the request that opened it: when the
  -- cache can open connections (`connect`), a resty connection is this
  -- command's alone and goes back to the pool after it. It is never left
  -- in self.conn while the command waits for its reply: a command of
  -- another request of the worker, run meanwhile, opens its own instead of
  -- sending on this one (whose reply it would read, or which it would close).
  local own = self.connect ~= nil and dialect_of(conn) == "resty"
  if own then self.conn = nil end
  local ok, res, err = pcall(conn[name], conn, ...)
  local failure = not ok and res or (res == nil and err ~= nil and err)
  failure = failure and tostring(failure)
  if failure and not (fine and failure:find(fine, 1, true)) then
    if own then pcall(conn.close, conn) else drop(self) end
    return nil, failure
  end
  if own then pcall(conn.set_keepalive, conn) end
  return res, failure
end

-- Run one command; returns its reply with null replies as nil, raises on
-- any failure.
local function command(self, name, ...)
  local res, failure = run(self, nil, name, ...)
  if failure then error("redis: " .. failure, 0) end
  if is_null(res) then return nil end
  return res
end

-- 16 random bytes, hex: unique among every process and machine that may
-- contend for the same lock.
local function unique_owner()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(16)
  if f then f:close() end
  if not bytes or #bytes < 16 then
    bytes = tostring({}) .. os.time() .. os.clock() .. math.random()
  end
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function milliseconds(seconds)
  return math.max(1, math.ceil(seconds * 1000))
end

--- cache:get(key) -> value | nil; raises when Redis fails or answers
-- something that is not a string
function Redis:get(key)
  local v = command(self, "get", self.prefix .. key)
  if v ~= nil and type(v) ~= "string" then
    error("redis: GET answered a " .. type(v), 0)
  end
  return v
end

--- cache:set(key, value, ttl_seconds); raises when Redis fails
function Redis:set(key, value, ttl)
  if ttl == nil then
    command(self, "set", self.prefix .. key, value)
  elseif ttl == math.floor(ttl) then
    -- math.floor gives an integer on Lua 5.3+, so "60" is sent, never "60.0"
    command(self, "set", self.prefix .. key, value, "EX", math.max(1, math.floor(ttl)))
  else
    command(self, "set", self.prefix .. key, value, "PX", milliseconds(ttl))
  end
end

--- cache:lock(key, ttl_seconds) -> true (taken) | false (held by another);
-- raises when Redis fails
function Redis:lock(key, ttl)
  local owner = unique_owner()
  local res = command(self, "set", self.prefix .. key, owner, "NX", "PX", milliseconds(ttl or 10))
  if res == true or res == "OK" then
    self.owners[key] = owner
    return true
  end
  if res == nil then return false end
  error("redis: SET NX answered " .. tostring(res), 0)
end

--- cache:incr(key, delta, ttl_seconds) -> new value; a missing key starts
-- at 0 with that TTL, an existing one keeps its own. Raises when Redis fails.
function Redis:incr(key, delta, ttl)
  local ms = ttl and ttl > 0 and milliseconds(ttl) or 0
  local v = tonumber(command(self, "eval", INCR_SCRIPT, 1, self.prefix .. key, tostring(delta or 1), tostring(ms)))
  if v == nil then error("redis: INCRBYFLOAT answered something that is not a number", 0) end
  return v
end

-- Run PACE_SCRIPT by its SHA1 (loaded once per cache); a Redis that
-- restarted has forgotten it: EVAL then, which loads it again.
local function run_pace(self, ...)
  if not self.pace_sha then
    self.pace_sha = command(self, "script", "load", PACE_SCRIPT)
  end
  local res, failure = run(self, "NOSCRIPT", "evalsha", self.pace_sha, ...)
  if failure and failure:find("NOSCRIPT", 1, true) then
    return command(self, "eval", PACE_SCRIPT, ...)
  end
  if failure then error("redis: " .. failure, 0) end
  return res
end

--- cache:pace(penalty_key, pace_key, budget) -> start time | penalty: the
-- engine's penalty check and pacing of one request in one round trip.
-- `budget` is {requests, window, margin, now}, `now` the caller's wall
-- clock; requests = 0 checks the penalty alone. The server keeps time (see
-- PACE_SCRIPT); the answer is on the caller's clock: the penalty as
-- "until duration [reason]" while one holds, else the request's start
-- time (a number). Raises when Redis fails.
function Redis:pace(penalty_key, pace_key, budget)
  local reply = run_pace(self, 2, self.prefix .. penalty_key, self.prefix .. pace_key,
    tostring(budget.requests), ("%.17g"):format(budget.window), ("%.17g"):format(budget.margin), "86400")
  local what = type(reply) == "table" and reply[1]
  if what == "penalty" and type(reply[2]) == "string" and tonumber(reply[3]) then
    local left = tonumber(reply[3]) / 1000
    local duration, reason = reply[2]:match "^%S+%s+(%S+)%s*(.*)$"
    if not tonumber(duration) then
      reason = reply[2]:match "^%S+%s+(.*)$" or ""
    elseif tonumber(duration) < left then
      left = tonumber(duration) -- the TTL is the penalty rounded up to a second
    end
    return ("%.17g %.17g%s"):format(budget.now + left, left, reason ~= "" and " " .. reason or "")
  end
  local delay = what == "start" and tonumber(reply[2])
  if not delay then error("redis: the pace script answered something unexpected", 0) end
  return budget.now + delay
end

--- cache:unlock(key): releases the lock only if this cache still owns it;
-- raises when Redis fails
function Redis:unlock(key)
  local owner = self.owners[key]
  if not owner then return end
  self.owners[key] = nil
  command(self, "eval", UNLOCK_SCRIPT, 1, self.prefix .. key, owner)
end

return Redis
