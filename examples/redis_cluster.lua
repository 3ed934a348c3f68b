--- A small Redis Cluster connection for plain Lua, over lua-redis: one
-- connection per node, each command sent to the node that serves its
-- key's slot, MOVED and ASK replies followed as every cluster client
-- does. It answers the commands spotify.cache.redis sends, so
--
--   local redis_cluster = require "examples.redis_cluster"
--   local cache = spotify.cache.redis(nil, { connect = function()
--     return redis_cluster.connect { nodes = { "10.0.0.1:6379", "10.0.0.2:6379" }, timeout = 0.5 }
--   end })
--
-- keeps the token, the 429 penalty, the pacing and the answers of a
-- client in a cluster. The keys of one script or lock share a slot (the
-- client names them with a hash tag), so no command crosses slots.
--
-- Inside OpenResty use a cluster client for cosockets instead (one that
-- follows MOVED and ASK, e.g. lua-resty-redis-cluster); the cache takes
-- it as it takes a resty.redis connection.
local redis = require "redis"

local cluster = {}
local Cluster = {}

local SLOTS = 16384
local MAX_REDIRECTS = 5

-- Bitwise xor of two 16-bit numbers, in plain arithmetic: the same on Lua
-- 5.1 (no bit operators) and on 5.4.
local function xor16(a, b)
  local r, bit = 0, 1
  for _ = 1, 16 do
    local x, y = a % 2, b % 2
    if x ~= y then r = r + bit end
    a, b, bit = (a - x) / 2, (b - y) / 2, bit * 2
  end
  return r
end

-- CRC-16/XMODEM (polynomial 0x1021), the key hash of Redis Cluster.
local CRC = {}
for i = 0, 255 do
  local c = i * 256
  for _ = 1, 8 do
    c = c >= 0x8000 and xor16(c * 2 % 0x10000, 0x1021) or c * 2 % 0x10000
  end
  CRC[i] = c
end

local function crc16(s)
  local c = 0
  for i = 1, #s do
    c = xor16(c * 256 % 0x10000, CRC[xor16((c - c % 256) / 256, s:byte(i))])
  end
  return c
end

--- redis_cluster.slot(key) -> the key's slot (0-16383): the hash of its
-- hash tag (what stands between the first "{" and the next "}", if not
-- empty), else of the whole key.
function cluster.slot(key)
  local open = key:find("{", 1, true)
  if open then
    local close = key:find("}", open + 1, true)
    if close and close > open + 1 then key = key:sub(open + 1, close - 1) end
  end
  return math.floor(crc16(key) % SLOTS)
end

local function split(address)
  local host, port = address:match "^(.*):(%d+)$"
  if not host then error("redis_cluster: a node is \"host:port\", got " .. tostring(address), 0) end
  return host, tonumber(port)
end

-- The open connection to `address`, opened on first use.
local function node(self, address)
  local conn = self.conns[address]
  if conn then return conn end
  local host, port = split(address)
  conn = redis.connect { host = host, port = port, timeout = self.timeout }
  conn:define_command("cluster")
  conn:define_command("asking")
  self.conns[address] = conn
  return conn
end

--- Close every node's connection (a later command opens them again).
function Cluster:close()
  for address, conn in pairs(self.conns) do
    pcall(function() conn.network.socket:close() end)
    self.conns[address] = nil
  end
end

-- Learn which node serves which slot from any node that answers.
local function load_slots(self)
  local last
  for _, address in ipairs(self.seeds) do
    local ok, ranges = pcall(function() return node(self, address):cluster("slots") end)
    if ok and type(ranges) == "table" then
      for _, r in ipairs(ranges) do
        local master = r[3]
        for slot = r[1], r[2] do self.slots[slot] = master[1] .. ":" .. master[2] end
      end
      return
    end
    last = ranges
    if self.conns[address] then pcall(function() self.conns[address].network.socket:close() end) end
    self.conns[address] = nil
  end
  error("redis_cluster: no node answered CLUSTER SLOTS: " .. tostring(last), 0)
end

-- The key a command routes by: EVAL and EVALSHA name theirs after the
-- script and the key count.
local function key_of(name, ...)
  if name == "eval" or name == "evalsha" then
    local n = tonumber((select(2, ...)))
    return n and n > 0 and (select(3, ...)) or nil
  end
  return (...)
end

local function redirect(message)
  local kind, slot, address = tostring(message):match "(%u+) (%d+) (%S+)"
  if kind == "MOVED" or kind == "ASK" then return kind, tonumber(slot), address end
end

-- Send `name` with its arguments to the node of its key's slot, following
-- MOVED (the slot has moved for good: remember it) and ASK (it is being
-- moved: this command alone goes to the new node, after ASKING). Raises
-- as lua-redis does; a connection that failed below Redis is closed.
local function call(self, name, ...)
  local key = key_of(name, ...)
  local address = key and self.slots[cluster.slot(key)] or self.seeds[1]
  local asking = false
  for _ = 0, MAX_REDIRECTS do
    local conn = node(self, address)
    local ok, res = pcall(function(...)
      if asking then conn:asking() end
      return conn[name](conn, ...)
    end, ...)
    if ok then return res end
    local kind, slot, target = redirect(res)
    if not kind then
      if not tostring(res):find("redis error", 1, true) then self:close() end
      error(res, 0)
    end
    if kind == "MOVED" then self.slots[slot] = target end
    address, asking = target, kind == "ASK"
  end
  error("redis_cluster: more than " .. MAX_REDIRECTS .. " redirections for " .. name, 0)
end

-- The commands spotify.cache.redis sends, and a few a spec uses to look.
local COMMANDS = { "get", "set", "del", "exists", "pttl", "ttl", "incr", "incrbyfloat", "expire", "eval", "evalsha",
  "hget", "hgetall" }
for _, name in ipairs(COMMANDS) do
  Cluster[name] = function(self, ...) return call(self, name, ...) end
end

--- cluster:script("load", source) -> sha1: loaded on every master, as a
-- script must be on the node that runs it.
function Cluster:script(sub, ...)
  local sha
  local seen = {}
  for _, address in pairs(self.slots) do
    if not seen[address] then
      seen[address] = true
      sha = node(self, address):script(sub, ...)
    end
  end
  return sha
end

--- redis_cluster.connect{nodes = {"host:port", ...}, timeout = s} -> a
-- connection to the cluster (raises when no node answers).
function cluster.connect(opts)
  if type(opts) ~= "table" or type(opts.nodes) ~= "table" or #opts.nodes == 0 then
    error("redis_cluster.connect: nodes must be a list of \"host:port\"", 2)
  end
  local self = setmetatable({ seeds = opts.nodes, timeout = opts.timeout, conns = {}, slots = {} },
    { __index = Cluster })
  load_slots(self)
  return self
end

return cluster
