--- Starts and stops a real Debian nginx with the lua module for a spec:
-- foreground (daemon off), its own prefix directory, a free port on loopback.
--
--   local server = nginx.start { workers = 1, http = "...", server = "..." }
--   server.port, server.base, server.prefix
--   server:get "/path"          -> status, body, headers (one request over luasocket)
--   server:parallel(paths, n)   -> {status, body} list, seconds: n at once (curl --parallel)
--   server:complaints(mark)     -> [warn] and worse lines of the error log
--                                  (after server:log_mark() when given)
--   server:stop()
--
--   nginx.start { conf = text, files = {name = text}, env = {NAME = value} }
--   runs a complete nginx.conf as given, with the listen port substituted
--   for "${PORT}" and the prefix directory for "${PREFIX}" (in `http` and
--   `server` too), `files` written into the prefix and `env` set for nginx.
--   The prefix holds a copy of the module (lua/, lib/spotify/core.so) that
--   `nginx.package_paths()` points at.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"

local nginx = {}
local Server = {}
Server.__index = Server

nginx.BINARY = "/usr/sbin/nginx"
nginx.MODULES = "/usr/lib/nginx/modules"

local files = require "spec.support.files"
local read_command, read_file, write_file = files.read_command, files.read_file, files.write_file
local free_port = files.free_port

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- The repository root (busted runs from it).
nginx.root = read_command "pwd"

--- Raises, naming what is missing, unless nginx, its lua module and the
-- LuaJIT build of the core are there. Specs call it: nothing is skipped.
function nginx.check()
  local missing = {}
  for _, path in ipairs {
    nginx.BINARY, nginx.MODULES .. "/ndk_http_module.so", nginx.MODULES .. "/ngx_http_lua_module.so",
    "/usr/share/lua/5.1/resty/core.lua", nginx.root .. "/build/luajit/spotify/core.so",
  } do
    if not exists(path) then missing[#missing + 1] = path end
  end
  if #missing > 0 then
    error("spec/support/nginx: missing " .. table.concat(missing, ", ")
      .. " (run make deps and make build)", 2)
  end
end

-- Does a worker answer? (The master accepts connections even when every
-- worker has died.) Any HTTP status will do.
local function answers(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  if not ok then return false end
  local _, status = http.request { url = ("http://127.0.0.1:%d/_ready"):format(port), sink = ltn12.sink.null(),
    create = function()
      local s = socket.tcp()
      s:settimeout(2)
      return s
    end }
  return type(status) == "number"
end

--- The lua_package_path / lua_package_cpath that load Lua files in the
-- prefix and the copy of this tree's module that `nginx.start` puts there
-- (lua/ and the C core built for LuaJIT, nginx's Lua, in lib/).
function nginx.package_paths()
  return 'lua_package_path "$prefix/?.lua;$prefix/lua/?.lua;$prefix/lua/?/init.lua;;";\n'
    .. '  lua_package_cpath "$prefix/lib/?.so;;";'
end

-- The workers run as another user (nobody) when nginx starts as root, and
-- the tree may sit in a folder only its owner can enter (a clone under
-- `mktemp -d`, a home folder): so nginx reads the module from a copy in its
-- prefix, which everyone may read, never from the tree.
local function copy_module(prefix)
  local root = nginx.root
  assert(os.execute(("mkdir -p %s/lib/spotify && cp -R '%s/lua' %s/lua && cp '%s/build/luajit/spotify/core.so' "
    .. "%s/lib/spotify/core.so"):format(prefix, root, prefix, root, prefix)))
end

local function main_conf(opts)
  return ([[
load_module %s/ndk_http_module.so;
load_module %s/ngx_http_lua_module.so;
worker_processes %d;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 2048; }
http {
  access_log off;
  client_body_temp_path temp/body;
  proxy_temp_path temp/proxy;
  fastcgi_temp_path temp/fastcgi;
  uwsgi_temp_path temp/uwsgi;
  scgi_temp_path temp/scgi;
  %s
  server {
    listen 127.0.0.1:${PORT} reuseport;
    location = /_ready { return 204; }
    %s
  }
}
]]):format(nginx.MODULES, nginx.MODULES, opts.workers or 1, opts.http or "", opts.server or "")
end

-- Is the process running? (An exited nginx stays a zombie until popen's
-- close reaps it.)
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match "^%d+ %b() (%a)" ~= "Z"
end

local function environment(env)
  local out = {}
  for k, v in pairs(env or {}) do out[#out + 1] = ("%s='%s'"):format(k, (tostring(v):gsub("'", "'\\''"))) end
  return table.concat(out, " ")
end

local function launch(self, env)
  -- nginx loads the plain LuaJIT build: never the sanitizer runtime a
  -- `make test-asan` run preloads into the interpreters.
  local cmd = ("echo $$; exec env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS %s %s -p %s/ "
    .. "-c conf/nginx.conf -e logs/error.log -g 'daemon off;' "
    .. ">%s/logs/stdout.log 2>&1"):format(environment(env), nginx.BINARY, self.prefix, self.prefix)
  self.proc = assert(io.popen(cmd, "r"))
  self.pid = tonumber(self.proc:read "*l")
  local give_up = socket.gettime() + 10
  while socket.gettime() < give_up do
    if answers(self.port) then return true end
    if not alive(self.pid) then break end
    socket.sleep(0.05)
  end
  return false
end

--- Start nginx; raises with its error log when it does not come up.
-- @tparam table opts workers, http (directives), server (locations) or conf
function nginx.start(opts)
  nginx.check()
  local prefix = read_command "mktemp -d /tmp/lua-spotify-nginx.XXXXXX"
  assert(os.execute(("mkdir -p %s/conf %s/logs %s/temp && chmod 755 %s"):format(prefix, prefix, prefix, prefix)))
  copy_module(prefix)
  for name, text in pairs(opts.files or {}) do write_file(prefix .. "/" .. name, text) end
  -- whatever the umask: the workers read all of it
  assert(os.execute("chmod -R a+rX " .. prefix))
  local template = opts.conf or main_conf(opts)
  local self = setmetatable({ prefix = prefix }, Server)
  for _ = 1, 5 do -- another process may take the free port before nginx does
    self.port = free_port()
    self.base = "http://127.0.0.1:" .. self.port
    local conf = template:gsub("%${PORT}", tostring(self.port)):gsub("%${PREFIX}", prefix)
    write_file(prefix .. "/conf/nginx.conf", conf)
    if launch(self, opts.env) then return self end
    self:stop(true)
    if not self:error_log():find("Address already in use", 1, true) then break end
  end
  local why = tostring(read_file(prefix .. "/logs/error.log")) .. tostring(read_file(prefix .. "/logs/stdout.log"))
  self:stop()
  error("spec/support/nginx: nginx did not start:\n" .. why)
end

local function tcp_with_timeout()
  local s = socket.tcp()
  s:settimeout(20)
  return s
end

--- One GET over a new connection (20 s at most).
-- @return status, body, headers
function Server:get(path)
  local out = {}
  local _, status, headers = http.request { url = self.base .. path, sink = ltn12.sink.table(out),
    create = tcp_with_timeout }
  return status, table.concat(out), headers
end

--- GET every path with `n` requests in flight at once (curl --parallel,
-- which opens its connections right away).
-- @return list of {status = , body = , time = (seconds, curl's time_total)} in the order of paths, and the wall time
function Server:parallel(paths, n)
  local dir = read_command("mktemp -d " .. self.prefix .. "/out.XXXXXX")
  local config = {}
  for i, path in ipairs(paths) do
    config[#config + 1] = ('url = "%s%s"\noutput = "%s/%d.body"'):format(self.base, path, dir, i)
  end
  write_file(dir .. "/curl.conf", table.concat(config, "\n") .. "\n")
  local started = socket.gettime()
  -- Without LD_PRELOAD: curl deadlocks under a preloaded sanitizer runtime.
  local codes = read_command(("env -u LD_PRELOAD curl -s --no-progress-meter --parallel "
    .. "--parallel-immediate --parallel-max %d -K %s/curl.conf"
    .. " -w '%%{urlnum} %%{http_code} %%{time_total}\\n'"):format(n, dir))
  local elapsed = socket.gettime() - started
  local results = {}
  for num, code, took in codes:gmatch "(%d+) (%d+) ([%d.]+)" do
    local i = tonumber(num) + 1
    results[i] = { status = tonumber(code), body = read_file(("%s/%d.body"):format(dir, i)), time = tonumber(took) }
  end
  return results, elapsed
end

--- The error log's text.
function Server:error_log()
  return read_file(self.prefix .. "/logs/error.log") or ""
end

--- Where the error log ends now: `complaints(mark)` reads only what
-- nginx wrote after it.
function Server:log_mark()
  return #self:error_log()
end

--- Lines of the error log at level warn or worse, after byte `mark` if given.
function Server:complaints(mark)
  local out = {}
  for line in self:error_log():sub((mark or 0) + 1):gmatch "[^\n]+" do
    if line:find "%[warn%]" or line:find "%[error%]" or line:find "%[crit%]" or line:find "%[alert%]"
        or line:find "%[emerg%]" then
      out[#out + 1] = line
    end
  end
  return out
end

--- Stop nginx (fast shutdown), wait for it and remove its prefix
-- directory unless `keep`.
function Server:stop(keep)
  if self.proc then
    if self.pid then os.execute("kill -TERM " .. self.pid .. " 2>/dev/null") end
    self.proc:close()
    self.proc = nil
  end
  if not keep and self.prefix:match "^/tmp/lua%-spotify%-nginx%." then os.execute("rm -rf " .. self.prefix) end
end

return nginx
