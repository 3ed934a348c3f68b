--- Token cache in a JSON file, shared by every process on the machine:
-- native (C, src/filestore.c). Writes are atomic (temporary file + rename)
-- and mode 0600; a file that is missing, unreadable or corrupt is a miss,
-- never an error. Renewal is single-flight across processes through an
-- lock in a lock file. Used as a response store, each answer is a file of
-- its own in a 0700 directory beside the file (path .. ".d"), named by a
-- digest of its key; every key's lock is a byte of one lock file there.
local core = require "spotify.core"

return {
  --- spotify.cache.file(path) -> cache (raises unless path is a non-empty string)
  new = function(path)
    if type(path) ~= "string" or path == "" then
      error("spotify.cache.file: path must be a non-empty string", 2)
    end
    return core.file_cache(path)
  end,
}
