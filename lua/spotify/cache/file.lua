--- Token cache in a JSON file, shared by every process on the machine.
-- Writes are atomic (temporary file + rename) and mode 0600; a file that is
-- missing, unreadable or corrupt is a miss, never an error. Renewal is
-- single-flight across processes through an flock on a side file.
local cjson = require "cjson.safe"
local core = require "spotify.core"

local time = core.time

local File = {}
File.__index = File

--- spotify.cache.file(path) -> cache
function File.new(path)
  if type(path) ~= "string" or path == "" then
    error("spotify.cache.file: path must be a non-empty string", 2)
  end
  return setmetatable({ path = path, held = {} }, File)
end

local function load(path)
  local text = core.file_read(path)
  local data = text and cjson.decode(text)
  if type(data) ~= "table" then return {} end
  return data
end

--- cache:get(key) -> value | nil
function File:get(key)
  local e = load(self.path)[key]
  if type(e) ~= "table" or type(e.value) ~= "string" or type(e.expires) ~= "number"
      or e.expires <= time() then
    return nil
  end
  return e.value
end

local function write_locked(self, key, value, ttl)
  local data, t = load(self.path), time()
  for k, e in pairs(data) do -- drop what has expired, and anything malformed
    if type(e) ~= "table" or type(e.expires) ~= "number" or e.expires <= t then data[k] = nil end
  end
  data[key] = { value = value, expires = t + ttl }
  return core.file_write(self.path, cjson.encode(data))
end

--- cache:set(key, value, ttl_seconds); raises when the file cannot be written
function File:set(key, value, ttl)
  local fd, err = core.file_lock(self.path .. ".lock", true)
  if not fd then error(err, 0) end
  local ok, written, werr = pcall(write_locked, self, key, value, ttl)
  core.file_unlock(fd)
  if not ok then error(written, 0) end
  if not written then error(werr, 0) end
end

local function lock_path(self, key)
  return self.path .. ".renew-" .. tostring(key):gsub("[^%w_-]", function(c)
    return string.format("%%%02X", c:byte())
  end)
end

--- cache:lock(key) -> true (taken), false (another process renews)
function File:lock(key)
  local fd, err = core.file_lock(lock_path(self, key), false)
  if fd == nil then error(err, 0) end
  if fd == false then return false end
  self.held[key] = fd
  return true
end

--- cache:unlock(key)
function File:unlock(key)
  local fd = self.held[key]
  self.held[key] = nil
  if fd then core.file_unlock(fd) end
end

return File
