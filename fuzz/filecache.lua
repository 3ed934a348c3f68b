-- The file token cache reading whatever is in its file: a miss (nil) or a
-- string, never a raise, whatever the bytes.
local core = core
local testing = core.testing()
local file_cache = require "spotify.cache.file"

local path = (os.getenv "FUZZ_TMP" or "/tmp") .. "/spotify-fuzz-cache-" .. tostring({}):match "0x(%x+)"
local cache = file_cache.new(path)
-- The cache reads only a file of its user's that no one else may read:
-- made so once, and each input rewritten in place (the mode stays).
assert(io.open(path, "wb")):close()
assert(os.execute("chmod 600 '" .. path .. "'"))

function check(data)
  local fh = assert(io.open(path, "wb"))
  fh:write(data)
  fh:close()
  assert(testing.file_read(path) == data, "file_read changed the bytes")
  for _, key in ipairs { "test-id", "a", "" } do
    local v = cache:get(key)
    assert(v == nil or type(v) == "string", "get returned " .. type(v))
  end
end
