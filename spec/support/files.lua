--- Small file, process and port helpers shared by the specs.
local files = {}

--- The whole file, or nil when it cannot be read.
function files.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read "*a"
  f:close()
  return s
end

--- Replace the file's content (raises when it cannot be written).
function files.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- A shell command's output without its trailing whitespace.
function files.read_command(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read "*a"
  p:close()
  return (out:gsub("%s+$", ""))
end

--- Run a shell command; true when it exits 0 (Lua 5.1 and 5.2+ alike).
function files.run(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

--- A loopback port nobody listens on right now (the kernel's pick, released again).
function files.free_port()
  local s = assert(require("socket").bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

return files
