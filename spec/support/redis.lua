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
--
--   local c = redis_server.cluster(3)   a real Redis Cluster of 3 masters
--   c.nodes                {"127.0.0.1:port", ...}
--   c:connect(timeout)     a cluster connection (examples/redis_cluster.lua)
--   c:each(fn)             fn(lua-redis connection) for every node
--   c:stop()
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

local function launch(dir, port, extra)
  local cmd = ("redis-server --bind 127.0.0.1 --port %d --dir %s --save '' --appendonly no "
    .. "--daemonize yes --pidfile %s/redis.pid --logfile %s/redis.log --protected-mode no %s")
    :format(port, dir, dir, dir, extra or "")
  os.execute(cmd)
  for _ = 1, 100 do
    if answers_ping(port) then return tonumber(read_file(dir .. "/redis.pid")) end
    socket.sleep(0.05)
  end
  return nil
end

-- A free port whose cluster bus port (port + 10000) is free as well.
local function free_cluster_port()
  for _ = 1, 50 do
    local port = free_port()
    if port + 10000 <= 65535 then
      local s = require("socket").bind("127.0.0.1", port + 10000)
      if s then
        s:close()
        return port
      end
    end
  end
  error "spec/support/redis: no free port pair for a cluster node"
end

--- Start a redis-server (`extra`: more options); raises when none comes up.
function redis_server.start(extra, pick_port)
  local dir = read_command "mktemp -d /tmp/lua-spotify-redis.XXXXXX"
  for _ = 1, 5 do -- another process may take the free port before redis does
    local port = (pick_port or free_port)()
    local pid = launch(dir, port, extra)
    if pid then return setmetatable({ dir = dir, port = port, pid = pid }, Server) end
  end
  error("spec/support/redis: redis-server did not start; see " .. dir .. "/redis.log")
end

local Cluster = {}
Cluster.__index = Cluster

-- CLUSTER INFO of the node on `port` says the cluster is up and every
-- slot is served.
local function cluster_ok(port)
  local info = read_command(("redis-cli -p %d cluster info 2>/dev/null"):format(port))
  return info:find("cluster_state:ok", 1, true) and info:find("cluster_slots_ok:16384", 1, true)
end

--- Start a Redis Cluster of `masters` nodes (no replicas) on loopback and
-- wait until every node sees it whole; raises when it does not come up.
function redis_server.cluster(masters)
  local self = setmetatable({ servers = {}, nodes = {} }, Cluster)
  local ok, err = pcall(function()
    for i = 1, masters do
      local s = redis_server.start("--cluster-enabled yes --cluster-config-file nodes.conf "
        .. "--cluster-node-timeout 5000", free_cluster_port)
      self.servers[i], self.nodes[i] = s, "127.0.0.1:" .. s.port
    end
    local out = read_command(("redis-cli --cluster create %s --cluster-replicas 0 --cluster-yes 2>&1")
      :format(table.concat(self.nodes, " ")))
    assert(out:find("All 16384 slots covered", 1, true), "spec/support/redis: cluster create failed: " .. out)
    local give_up = socket.gettime() + 30
    for _, s in ipairs(self.servers) do
      while not cluster_ok(s.port) do
        assert(socket.gettime() < give_up, "spec/support/redis: the cluster did not come up")
        socket.sleep(0.1)
      end
    end
  end)
  if not ok then
    self:stop()
    error(err, 0)
  end
  return self
end

--- A cluster connection (examples/redis_cluster.lua) with `timeout` seconds.
function Cluster:connect(timeout)
  redis_server.client_library()
  return require("examples.redis_cluster").connect { nodes = self.nodes, timeout = timeout }
end

--- fn(connection) for a lua-redis connection to each node in turn.
function Cluster:each(fn)
  for _, s in ipairs(self.servers) do fn(s:connect()) end
end

--- Stop every node and remove its directory.
function Cluster:stop()
  for _, s in ipairs(self.servers) do s:stop() end
  self.servers = {}
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
