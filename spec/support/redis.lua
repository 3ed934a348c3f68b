--- Starts and stops a real redis-server for a spec: loopback, a free port,
-- its own directory, no persistence.
--
--   local server = redis_server.start()
--   server.port, server.dir
--   server:connect()       a lua-redis connection (require "redis")
--   server:kill()          SIGKILL, as a crash would
--   server:restart()       after kill: a new server on the same port
--   server:pause() / server:resume()   SIGSTOP / SIGCONT: a server that hangs
--   server:stop()
--   redis_server.garbage() a server on a free port that answers every
--                          command with bytes that are not RESP
local socket = require "socket"

local redis_server = {}
local Server = {}
Server.__index = Server

local files = require "spec.support.files"
local read_command, read_file, free_port = files.read_command, files.read_file, files.free_port

--- lua-redis for the running interpreter. Debian installs it for Lua
-- 5.1-5.3 only; the file is plain Lua that runs on 5.4 as well.
function redis_server.client_library()
  local ok, lib = pcall(require, "redis")
  if ok then return lib end
  package.path = package.path .. ";/usr/share/lua/5.1/?.lua"
  return require "redis"
end

local function answers_ping(port)
  local c = socket.tcp()
  c:settimeout(0.5)
  if not c:connect("127.0.0.1", port) then
    c:close()
    return false
  end
  c:send "PING\r\n"
  local line = c:receive "*l"
  c:close()
  return line == "+PONG"
end

local function launch(dir, port)
  local cmd = ("redis-server --bind 127.0.0.1 --port %d --dir %s --save '' --appendonly no "
    .. "--daemonize yes --pidfile %s/redis.pid --logfile %s/redis.log --protected-mode no")
    :format(port, dir, dir, dir)
  os.execute(cmd)
  for _ = 1, 100 do
    if answers_ping(port) then return tonumber(read_file(dir .. "/redis.pid")) end
    socket.sleep(0.05)
  end
  return nil
end

--- Start a redis-server; raises when none comes up.
function redis_server.start()
  local dir = read_command "mktemp -d /tmp/lua-spotify-redis.XXXXXX"
  for _ = 1, 5 do -- another process may take the free port before redis does
    local port = free_port()
    local pid = launch(dir, port)
    if pid then return setmetatable({ dir = dir, port = port, pid = pid }, Server) end
  end
  error("spec/support/redis: redis-server did not start; see " .. dir .. "/redis.log")
end

local function signal(self, name)
  if self.pid then os.execute(("kill -%s %d 2>/dev/null"):format(name, self.pid)) end
end

--- A lua-redis connection to this server; `timeout` in seconds, none if nil.
function Server:connect(timeout)
  return redis_server.client_library().connect { host = "127.0.0.1", port = self.port, timeout = timeout }
end

-- Wait (at most 2 s) until the signalled server no longer answers.
local function wait_gone(self)
  for _ = 1, 100 do
    if not answers_ping(self.port) then break end
    socket.sleep(0.02)
  end
  self.pid = nil
end

--- Crash the server (SIGKILL) and wait until it is gone.
function Server:kill()
  signal(self, "KILL")
  wait_gone(self)
end

--- Start the server again on its port after `kill` (empty: no persistence).
function Server:restart()
  assert(not self.pid, "spec/support/redis: restart after kill")
  self.pid = launch(self.dir, self.port)
  assert(self.pid, "spec/support/redis: redis-server did not restart; see " .. self.dir .. "/redis.log")
end

--- Freeze the server: connections are accepted by the kernel, nothing answers.
function Server:pause() signal(self, "STOP") end

function Server:resume() signal(self, "CONT") end

--- Stop the server and remove its directory.
function Server:stop()
  if self.pid then
    signal(self, "CONT")
    signal(self, "TERM")
    wait_gone(self)
  end
  if self.dir then os.execute("rm -rf '" .. self.dir .. "'") end
  self.dir = nil
end

local GARBAGE_SERVER = [[
import os, socket, sys, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)
print(srv.getsockname()[1], flush=True)
def serve(conn):
    try:
        while conn.recv(65536):
            conn.sendall(b"?garbage \x00\xff not RESP\r\n")
    except OSError:
        pass
    conn.close()
def stop():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=stop, daemon=True).start()
while True:
    try:
        conn, _ = srv.accept()
    except OSError:
        break
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
]]

--- A TCP server that answers every command with bytes that are not RESP.
-- Returns {port = n, stop = function}.
function redis_server.garbage()
  local script = os.tmpname()
  local f = assert(io.open(script, "wb"))
  f:write(GARBAGE_SERVER)
  f:close()
  local out = os.tmpname()
  -- the server stops when its stdin closes, that is when proc is closed
  local proc = assert(io.popen(("exec python3 '%s' > '%s' 2>/dev/null"):format(script, out), "w"))
  local port
  for _ = 1, 100 do
    port = tonumber((read_file(out) or ""):match "%d+")
    if port then break end
    socket.sleep(0.05)
  end
  assert(port, "spec/support/redis: garbage server did not start")
  return {
    port = port,
    stop = function()
      proc:close()
      os.remove(script)
      os.remove(out)
    end,
  }
end

return redis_server
