--- In-process token cache, the default: native (C data in the core), so
-- any driver can use it at any time. One instance may be shared by several
-- clients; entries expire after their TTL.
--   cache:get(key) -> value | nil
--   cache:set(key, value, ttl_seconds)
--   cache:lock(key, ttl) -> true | false;  cache:unlock(key)
--   cache:incr(key, delta, ttl) -> new value
-- Bounded in bytes (`max_bytes`, default 64 MiB): as a response store it
-- makes room by dropping the least recently used answers, never a token,
-- a lock, a 429 penalty or pacing.
local core = require "spotify.core"

local MAX_BYTES = 64 * 1024 * 1024

return {
  --- spotify.cache.memory([opts]) -> cache; `opts.max_bytes`: the bound
  -- (raises on an unknown option or a bad value, naming it)
  new = function(opts)
    if opts ~= nil and type(opts) ~= "table" then
      error("spotify.cache.memory: options must be a table, got " .. type(opts), 2)
    end
    for k, v in pairs(opts or {}) do
      if k ~= "max_bytes" then error("spotify.cache.memory: unknown option '" .. tostring(k) .. "'", 3) end
      if type(v) ~= "number" or v % 1 ~= 0 or v < 1 or v > 2 ^ 53 then
        error("spotify.cache.memory: option 'max_bytes' must be a whole number of bytes above 0, got "
          .. tostring(v), 2)
      end
    end
    return core.memory_cache(opts and opts.max_bytes or MAX_BYTES)
  end,
}
