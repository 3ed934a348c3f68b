--- Starts and steers the fake Spotify (fake_spotify.py) for a spec.
--
--   local f = fake.start { tls = true }   (demo = true: the answers `make demo` shows)
--   f.api_base, f.token_url            plain HTTP on 127.0.0.1
--   f.tls_api_base, f.tls_token_url    TLS on localhost, signed by f.ca_file
--   f:config { expires_in = 5 }        f:faults { { path = "/v1/tracks", status = 500 } }
--   f:log(), f:log_for "/v1/"          f:reset()       f:stop()
--   f:peak("/v1/", 2)  the most API requests that arrived within any 2 s
--   f:kill()       SIGKILL, as a crash would; connections in flight break
--   f:restart()    a new fake on the same ports (a fresh state: no tokens)
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"

local fake = {}
local Fake = {}
Fake.__index = Fake

local function here()
  local src = debug.getinfo(1, "S").source:sub(2)
  return src:match "^(.*)/[^/]*$" or "."
end

local files = require "spec.support.files"
local run, read_command = files.run, files.read_command

-- One directory and one self-signed certificate per test process.
local shared_dir
local function workdir()
  if not shared_dir then shared_dir = read_command "mktemp -d /tmp/lua-spotify-spec.XXXXXX" end
  return shared_dir
end

local function certificate()
  local dir = workdir()
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  if not io.open(cert) then
    local ok = run(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 "
      .. "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1")
      :format(key, cert))
    assert(ok, "spec/support/fake: openssl could not make a certificate")
  end
  return cert, key
end

fake.workdir = workdir

local function launch(opts, port, tls_port)
  local cmd = "echo $$; exec python3 " .. here() .. "/fake_spotify.py"
  if port then cmd = cmd .. " --port " .. port end
  local cert, key
  if opts.demo then cmd = cmd .. " --demo" end
  if opts.tls then
    cert, key = certificate()
    cmd = cmd .. " --tls-cert " .. cert .. " --tls-key " .. key
    if tls_port then cmd = cmd .. " --tls-port " .. tls_port end
  end
  local proc = assert(io.popen(cmd, "r"))
  local pid = tonumber(proc:read "*l")
  local line = proc:read "*l"
  if not line then
    proc:close()
    error("spec/support/fake: fake_spotify.py did not start", 0)
  end
  return proc, pid, line, cert
end

function fake.start(opts)
  opts = opts or {}
  local proc, pid, line, cert = launch(opts)
  local port, tls_port = line:match "^(%d+)%s*(%d*)"
  local self = setmetatable({ proc = proc, pid = pid, opts = opts, port = tonumber(port) }, Fake)
  self.base = "http://127.0.0.1:" .. port
  self.api_base = self.base .. "/v1"
  self.token_url = self.base .. "/api/token"
  if opts.tls then
    self.tls_port = tonumber(tls_port)
    self.tls_api_base = "https://localhost:" .. tls_port .. "/v1"
    self.tls_token_url = "https://localhost:" .. tls_port .. "/api/token"
    self.ca_file = cert
  end
  return self
end

function Fake:call(what, body)
  local out = {}
  local ok, code = http.request {
    url = self.base .. "/_control/" .. what,
    method = body and "POST" or "GET",
    source = body and ltn12.source.string(body),
    headers = body and { ["content-length"] = #body, ["content-type"] = "application/json" } or nil,
    sink = ltn12.sink.table(out),
  }
  assert(ok and code == 200, "spec/support/fake: control " .. what .. " failed: " .. tostring(code))
  return table.concat(out)
end

function Fake:config(changes) self:call("config", cjson.encode(changes)) end

--- Replaces the fault list. Each fault: path (prefix), method, query_contains,
-- status, fixture | body, headers, delay, action, seconds, times (1; -1 = always),
-- barrier = n (each answer waits until n such requests are in flight together,
-- at most barrier_seconds, 5; the log entry's `met` says whether they were).
-- reason (Spotify's error.reason in the error object, e.g. "QUOTA_EXCEEDED").
function Fake:faults(list)
  local json = #list == 0 and '{"faults":[]}' or cjson.encode { faults = list }
  self:call("config", json)
end

function Fake:reset() self:call("reset", "{}") end

--- Every request: method, path, query, body, authorization, ..., time (when
-- the fake handled it), arrived (when the kernel received it), answered
-- (when the answer left), status, fault_status (what a fault sent instead).
function Fake:log() return cjson.decode(self:call "log") end

--- The log entries whose path starts with `prefix` ("" for all), among
-- those after the first `after` (default 0) of the whole log.
function Fake:log_for(prefix, after)
  local out = {}
  for i, e in ipairs(self:log()) do
    if i > (after or 0) and e.path:sub(1, #prefix) == prefix then out[#out + 1] = e end
  end
  return out
end

--- The most requests to `prefix` (see log_for) that arrived within any
-- `window` seconds, by the kernel's receive time; and how many there were.
function Fake:peak(prefix, window, after)
  local t = {}
  for _, e in ipairs(self:log_for(prefix, after)) do t[#t + 1] = e.arrived end
  table.sort(t)
  local most, first = 0, 1
  for i = 1, #t do
    while t[i] - t[first] >= window do first = first + 1 end
    most = math.max(most, i - first + 1)
  end
  return most, #t
end

function Fake:kill()
  if not self.proc then return end
  os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
  self.proc:close() -- reaps it
  self.proc = nil
end

function Fake:restart()
  assert(not self.proc, "spec/support/fake: restart after kill or stop")
  for _ = 1, 50 do -- the port is free again once the old process is gone
    local ok, proc, pid = pcall(launch, self.opts, self.port, self.tls_port)
    if ok then
      self.proc, self.pid = proc, pid
      return
    end
    require("socket").sleep(0.05)
  end
  error("spec/support/fake: could not restart on port " .. self.port)
end

function Fake:stop()
  if not self.proc then return end
  pcall(self.call, self, "stop", "{}")
  self.proc:close()
  self.proc = nil
end

--- Options for a client of this fake, plus `extra`.
--- n distinct valid IDs the fake answers for (base-62, 22 characters):
-- prefix (one letter, default "T") then the number, zero-padded.
function fake.ids(n, prefix)
  local out = {}
  for i = 1, n do out[i] = ((prefix or "T") .. "%021d"):format(i) end
  return out
end

function fake.client_opts(f, extra)
  local o = { client_id = "test-id", client_secret = "test-secret", api_base = f.api_base,
    token_url = f.token_url }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

return fake
