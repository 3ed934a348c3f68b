--- In-process token cache, the default: native (C data in the core), so
-- any driver can use it at any time. One instance may be shared by several
-- clients; entries expire after their TTL.
--   cache:get(key) -> value | nil
--   cache:set(key, value, ttl_seconds)
--   cache:lock(key, ttl) -> true | false;  cache:unlock(key)
--   cache:incr(key, delta, ttl) -> new value
local core = require "spotify.core"

return {
  --- spotify.cache.memory() -> cache
  new = function() return core.memory_cache() end,
}
