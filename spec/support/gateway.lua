--- Starts the gateway of examples/gateway (its nginx.conf and gateway.lua,
-- as shipped) in a real nginx against the fake Spotify, and asks it things
-- the way a caller would, keeping every answer so a spec can search them.
--
--   local node = gateway.start(f, { workers = 2, env = { SPOTIFY_REDIS = "127.0.0.1:6379" } })
--   node.base                       "http://127.0.0.1:PORT/v1": what a client points at
--   node:request("GET", target, headers) -> status, body, headers (lower-case names);
--                                   the target goes out as given (dot segments, 10 kB paths)
--   node.answers                    every answer so far: {status, body, head}
--   node:stop()
--   gateway.make(env) / unmake(run)  `make gateway` as a user runs it (examples/gateway/run.sh)
--   gateway.leaks(answers, f)       the secret, its Basic form or a token the fake handed
--                                   out, wherever one appears in an answer (nil: none)
local socket = require "socket"
local mime = require "mime"
local files = require "spec.support.files"
local nginx = require "spec.support.nginx"

local gateway = {}
local Node = {}
Node.__index = Node

gateway.CLIENT_ID, gateway.SECRET = "test-id", "test-secret"

--- Start a gateway node in front of `f` (anything with api_base and
-- token_url). opts: workers (default 2), env (more of nginx's environment:
-- SPOTIFY_REDIS, SPOTIFY_GATEWAY_KEYS, SPOTIFY_BATCH_WINDOW ...),
-- caller_rate (limit_req's), gateway_lua (the text of gateway.lua, default
-- the example's), http (more directives of the http block).
function gateway.start(f, opts)
  opts = opts or {}
  local conf = assert(files.read_file "examples/gateway/nginx.conf")
  conf = conf:gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:${PORT} reuseport;")
  conf = conf:gsub("worker_processes %d+;", ("worker_processes %d;"):format(opts.workers or 2))
  -- every caller of a spec comes from 127.0.0.1: one address for the
  -- per-caller limit, unless a spec asks for it (opts.caller_rate)
  conf = conf:gsub("rate=50r/s", "rate=" .. (opts.caller_rate or "100000r/s"))
  if opts.http then conf = conf:gsub("\nhttp {\n", function(m) return m .. "  " .. opts.http .. "\n" end) end
  local env = { SPOTIFY_CLIENT_ID = gateway.CLIENT_ID, SPOTIFY_CLIENT_SECRET = gateway.SECRET,
    SPOTIFY_API_BASE = f.api_base, SPOTIFY_TOKEN_URL = f.token_url, SPOTIFY_RATE_LIMIT = "0" }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local server = nginx.start { conf = conf, env = env,
    files = { ["gateway.lua"] = opts.gateway_lua or assert(files.read_file "examples/gateway/gateway.lua") } }
  local node = setmetatable({ server = server, port = server.port, answers = {},
    base = ("http://127.0.0.1:%d/v1"):format(server.port) }, Node)
  return node
end

local function dechunk(body)
  local out, pos = {}, 1
  while true do
    local size_end = body:find("\r\n", pos, true)
    if not size_end then return nil end
    local size = tonumber(body:sub(pos, size_end - 1):match "^%x+", 16)
    if not size then return nil end
    if size == 0 then return table.concat(out) end
    out[#out + 1] = body:sub(size_end + 2, size_end + 1 + size)
    pos = size_end + 2 + size + 2
  end
end

--- One request over a new connection, the target sent byte for byte.
-- @return status, body, headers (names in lower case)
function Node:request(method, target, headers)
  local c = socket.tcp()
  c:settimeout(20)
  assert(c:connect("127.0.0.1", self.port))
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: 127.0.0.1:" .. self.port, "Connection: close" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if method == "POST" then lines[#lines + 1] = "Content-Length: 0" end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n"))
  local raw = c:receive "*a"
  c:close()
  local head, body = raw:match "^(.-)\r\n\r\n(.*)$"
  local status = tonumber(head:match "^HTTP/1%.%d (%d%d%d)")
  local h = {}
  for name, value in head:gmatch "\r\n([^:\r\n]+):%s*([^\r\n]*)" do h[name:lower()] = value end
  if (h["transfer-encoding"] or ""):find "chunked" then body = dechunk(body) end
  self.answers[#self.answers + 1] = { status = status, body = body, head = head }
  return status, body, h
end

--- GET a path below the node's /v1.
function Node:get(path, headers)
  return self:request("GET", "/v1" .. path, headers)
end

function Node:stop()
  self.server:stop()
end

--- The first secret found in the answers (status line, headers and body
-- of each): the client secret, its Basic form, or a token the fake gave
-- out (every Bearer value of its log). nil when there is none.
function gateway.leaks(answers, f)
  local secrets = { gateway.SECRET, (mime.b64(gateway.CLIENT_ID .. ":" .. gateway.SECRET)) }
  for _, e in ipairs(f:log()) do
    local token = e.authorization and e.authorization:match "^Bearer (.+)$"
    if token then secrets[#secrets + 1] = token end
  end
  for _, a in ipairs(answers) do
    local text = (a.head or "") .. "\n" .. (a.body or "")
    for _, s in ipairs(secrets) do
      if text:find(s, 1, true) then return s end
    end
  end
  return nil
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- `make gateway` as a user runs it, in the background, with `env` and the
-- port given: {pid, port, prefix, output = function() -> text}, once the
-- gateway answers (or after 60 s: a first run builds the module).
function gateway.make(env)
  nginx.check()
  local prefix = files.read_command "mktemp -d /tmp/lua-spotify-gateway.XXXXXX"
  local port = files.free_port()
  local assigns = { "PREFIX=" .. quote(prefix) }
  for k, v in pairs(env or {}) do assigns[#assigns + 1] = k .. "=" .. quote(v) end
  -- setsid: make, run.sh, nginx and any fake form one group that stop() ends
  local pid = tonumber(files.read_command(("setsid env -u LD_PRELOAD -u SPOTIFY_CLIENT_ID -u SPOTIFY_CLIENT_SECRET "
    .. "-u SPOTIFY_API_BASE -u SPOTIFY_TOKEN_URL %s make --no-print-directory gateway GATEWAY_PORT=%d "
    .. "> %s/make.log 2>&1 < /dev/null & echo $!"):format(table.concat(assigns, " "), port, prefix)))
  local run = { pid = pid, port = port, prefix = prefix,
    output = function() return files.read_file(prefix .. "/make.log") or "" end }
  gateway.eventually(function()
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    return ok
  end, 60)
  return run
end

--- Stop what gateway.make started and remove its prefix.
function gateway.unmake(run)
  if not run then return end
  os.execute(("kill -TERM -%d 2> /dev/null; sleep 0.3; kill -KILL -%d 2> /dev/null; rm -rf %s")
    :format(run.pid, run.pid, quote(run.prefix)))
end

--- Wait (at most `seconds`) until `check()` is true; returns its last value.
function gateway.eventually(check, seconds)
  local give_up = socket.gettime() + (seconds or 10)
  while true do
    local v = check()
    if v or socket.gettime() > give_up then return v end
    socket.sleep(0.05)
  end
end

return gateway
