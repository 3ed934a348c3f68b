--- In-process token cache, the default. One instance may be shared by
-- several clients; entries expire after their TTL.
local core = require "spotify.core"

local now = core.now

local Memory = {}
Memory.__index = Memory

--- spotify.cache.memory() -> cache
function Memory.new()
  return setmetatable({ entries = {}, locks = {} }, Memory)
end

--- cache:get(key) -> value | nil
function Memory:get(key)
  local e = self.entries[key]
  if not e then return nil end
  if e.expires <= now() then
    self.entries[key] = nil
    return nil
  end
  return e.value
end

--- cache:set(key, value, ttl_seconds)
function Memory:set(key, value, ttl)
  self.entries[key] = { value = value, expires = now() + (ttl or math.huge) }
end

--- cache:lock(key, ttl) -> true if taken, false if held (until its ttl)
function Memory:lock(key, ttl)
  local t = now()
  local held = self.locks[key]
  if held and held > t then return false end
  self.locks[key] = t + ttl
  return true
end

--- cache:unlock(key)
function Memory:unlock(key)
  self.locks[key] = nil
end

return Memory
