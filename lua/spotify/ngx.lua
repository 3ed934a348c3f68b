--- The OpenResty / nginx transport: HTTP/1.1 over cosockets, so a request
-- never blocks the worker's event loop. It only moves bytes; every decision
-- (status classes, retries, backoff, tokens) stays in engine.lua and the C
-- core, exactly as with libcurl.
--
-- Connections are kept in nginx's cosocket pool (`setkeepalive`), one pool
-- per scheme, host and port. TLS always verifies the peer against
-- `lua_ssl_trusted_certificate` (nginx has no per-socket trust store, so the
-- client's `ca_file` cannot apply here). A `proxy` must be an http://
-- proxy: absolute-form requests for http://, a CONNECT tunnel for https://.
-- @module spotify.ngx
local core = require "spotify.core"

local parse_retry_after, now = core.parse_retry_after, core.now
local concat, tonumber, lower = table.concat, tonumber, string.lower

local M = {}

local MAX_HEADERS = 100
local KEEPALIVE_IDLE_MS = 60 * 1000
local POOL_SIZE = 64

-- Phases where cosockets, ngx.sleep and ngx.thread exist.
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

--- Raise a clear error unless the current phase can do network I/O.
local function check_phase(level)
  local phase = ngx.get_phase()
  if COSOCKET_PHASES[phase] then return end
  error("spotify: nginx's " .. phase .. " phase has no cosockets, so the client cannot reach the"
    .. " network there; call it from rewrite_by_lua, access_by_lua, content_by_lua or ngx.timer.at",
    level + 1)
end

local function split_url(url)
  local scheme, host, port, path = url:match "^(https?)://%[([^%]]+)%]:?(%d*)(.*)$"
  if not scheme then scheme, host, port, path = url:match "^(https?)://([^/:?#]+):?(%d*)(.*)$" end
  if not scheme then return nil end
  local default = scheme == "https" and 443 or 80
  local n = tonumber(port) or default
  local host_header = host:find(":", 1, true) and ("[" .. host .. "]") or host
  if n ~= default then host_header = host_header .. ":" .. n end
  if path == "" or path:sub(1, 1) == "?" then path = "/" .. path end
  return { scheme = scheme, host = host, port = n, path = path, host_header = host_header }
end

-- "localhost" is loopback by definition (RFC 6761); nginx would otherwise
-- need a resolver entry for it.
local function address(host)
  if lower(host) == "localhost" then return "127.0.0.1" end
  return host
end

local function request_text(st, method, u, auth, body, proxy)
  -- Through a plain proxy an http:// request names its whole URL;
  -- https:// goes through a CONNECT tunnel and looks as without a proxy.
  local target = (proxy and u.scheme == "http") and (u.scheme .. "://" .. u.host_header .. u.path) or u.path
  local lines = {
    method .. " " .. target .. " HTTP/1.1",
    "Host: " .. u.host_header,
    "Accept: application/json",
  }
  if st.user_agent then lines[#lines + 1] = "User-Agent: " .. st.user_agent end
  if auth then lines[#lines + 1] = "Authorization: " .. auth end
  if method == "POST" then
    body = body or ""
    lines[#lines + 1] = "Content-Type: application/x-www-form-urlencoded"
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = body or ""
  return concat(lines, "\r\n")
end

-- Per-request deadline: every wait gets what is left of `timeout`.
local function arm(sock, deadline)
  local left = deadline - now()
  if left <= 0 then return false end
  sock:settimeout(math.max(1, math.floor(left * 1000)))
  return true
end

local function receive(sock, deadline, pattern)
  if not arm(sock, deadline) then return nil, "timeout" end
  return sock:receive(pattern)
end

-- A TLS failure that retrying cannot cure: the certificate was refused.
local function verify_failure(err)
  return err:match "^%d+:" ~= nil or err:find("certificate", 1, true) ~= nil
end

local read_head

-- Ask the proxy for a tunnel to u. Returns true or nil, kind, message, retryable.
local function tunnel(sock, u, deadline)
  local authority = u.host_header:find(":%d+$") and u.host_header or (u.host_header .. ":" .. u.port)
  if not arm(sock, deadline) then return nil, "timeout", "proxy CONNECT timed out", true end
  local ok, err = sock:send("CONNECT " .. authority .. " HTTP/1.1\r\nHost: " .. authority .. "\r\n\r\n")
  local head
  if ok then head, err = read_head(sock, deadline) end
  if not head then
    if err == "timeout" then return nil, "timeout", "proxy CONNECT timed out", true end
    return nil, "network", "proxy CONNECT failed: " .. tostring(err), true
  end
  if head.status ~= 200 then
    return nil, "network", "proxy refused CONNECT to " .. authority .. " (HTTP " .. head.status .. ")", false
  end
  return true
end

--- Open (or take from the pool) a connection to u, directly or through the
-- proxy; tunnel and handshake run only on a new one.
-- Returns sock, reused or nil, kind, message, retryable.
local function connect(st, u, proxy, deadline)
  local sock = ngx.socket.tcp()
  local connect_ms = math.floor(math.min(st.connect_timeout or 5, math.max(deadline - now(), 0.001)) * 1000)
  sock:settimeout(math.max(1, connect_ms))
  local peer = proxy or u
  local pool = "spotify:" .. u.scheme .. ":" .. u.host .. ":" .. u.port
  if proxy then pool = pool .. "@" .. proxy.host .. ":" .. proxy.port end
  local ok, err = sock:connect(address(peer.host), peer.port, { pool = pool, pool_size = POOL_SIZE })
  if not ok then
    if err == "timeout" then return nil, "timeout", "connect to " .. peer.host .. " timed out", true end
    return nil, "network", "cannot connect to " .. peer.host .. ":" .. peer.port .. ": " .. err, true
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if reused then return sock, true end
  st.ngx_connections = (st.ngx_connections or 0) + 1
  if proxy and u.scheme == "https" then
    local kind, message, retryable
    ok, kind, message, retryable = tunnel(sock, u, deadline)
    if not ok then
      sock:close()
      return nil, kind, message, retryable
    end
  end
  if u.scheme == "https" then
    if not arm(sock, deadline) then
      sock:close()
      return nil, "timeout", "TLS handshake with " .. u.host .. " timed out", true
    end
    local session
    session, err = sock:sslhandshake(nil, u.host, true)
    if not session then
      sock:close()
      if err == "timeout" then return nil, "timeout", "TLS handshake with " .. u.host .. " timed out", true end
      return nil, "network", "TLS handshake with " .. u.host .. " failed: " .. tostring(err), not verify_failure(err)
    end
  end
  return sock, false
end

read_head = function(sock, deadline)
  local line, err = receive(sock, deadline, "*l")
  if not line then return nil, err end
  local minor, code = line:match "^HTTP/1%.([01]) (%d%d%d)"
  if not code then return nil, "malformed status line" end
  local headers, count = {}, 0
  while true do
    line, err = receive(sock, deadline, "*l")
    if not line then return nil, err end
    if line == "" then break end
    count = count + 1
    if count > MAX_HEADERS then return nil, "too many headers" end
    local name, value = line:match "^([^:]+):%s*(.-)%s*$"
    if name then headers[lower(name)] = value end
  end
  return { status = tonumber(code), headers = headers, http10 = minor == "0" }
end

local function read_chunked(sock, deadline, max_body)
  local parts, total = {}, 0
  while true do
    local line, err = receive(sock, deadline, "*l")
    if not line then return nil, err end
    local size = tonumber(line:match "^%s*(%x+)", 16)
    if not size then return nil, "malformed chunk size" end
    if size == 0 then break end
    total = total + size
    if total > max_body then return nil, "too big" end
    local data
    data, err = receive(sock, deadline, size)
    if not data then return nil, err end
    parts[#parts + 1] = data
    data, err = receive(sock, deadline, 2)
    if data ~= "\r\n" then return nil, err or "malformed chunk" end
  end
  repeat -- trailer lines, up to the empty one
    local line, err = receive(sock, deadline, "*l")
    if not line then return nil, err end
  until line == ""
  return concat(parts)
end

-- Returns body, keep_alive or nil, err.
local function read_body(sock, deadline, head, method, max_body)
  local status, h = head.status, head.headers
  if method == "HEAD" or status == 204 or status == 304 then
    return "", true
  end
  if h["transfer-encoding"] and lower(h["transfer-encoding"]):find("chunked", 1, true) then
    local body, err = read_chunked(sock, deadline, max_body)
    if not body then return nil, err end
    return body, true
  end
  local length = h["content-length"]
  if length then
    local n = tonumber(length)
    if not n then return nil, "malformed Content-Length" end
    if n > max_body then return nil, "too big" end
    if n == 0 then return "", true end
    local body, err = receive(sock, deadline, n)
    if not body then return nil, err end
    return body, true
  end
  -- Neither: the body runs to the end of the connection.
  local body, err = receive(sock, deadline, "*a")
  if not body then return nil, err end
  if #body > max_body then return nil, "too big" end
  return body, false
end

local function reusable(head)
  local c = head.headers.connection and lower(head.headers.connection) or ""
  if head.http10 then return c:find("keep-alive", 1, true) ~= nil end
  return c:find("close", 1, true) == nil
end

-- What a transport error means for the engine: kind, retryable.
local function failure(err)
  if err == "timeout" then return "timeout", true end
  if err == "too big" then return "decode", false end
  if err == "too many headers" then return "decode", false end
  return "network", true
end

local function failure_message(err, u)
  if err == "too big" then return "response body larger than max_body" end
  if err == "too many headers" then return "response has too many header lines" end
  if err == "timeout" then return "request to " .. u.host .. " timed out" end
  return "connection to " .. u.host .. " failed: " .. tostring(err)
end

-- One attempt over one connection. Returns the answer table, or nil, err,
-- stale (stale: a pooled connection failed before any byte of the answer).
local function attempt(st, sock, reused, deadline, method, request)
  if not arm(sock, deadline) then return nil, "timeout" end
  local sent, err = sock:send(request)
  if not sent then return nil, err, reused end
  local head
  for _ = 1, 5 do -- informational answers (1xx) come before the real one
    head, err = read_head(sock, deadline)
    if not head then return nil, err, reused and (err == "closed" or err == "connection reset by peer") end
    if head.status >= 200 then break end
  end
  if head.status < 200 then return nil, "too many informational answers" end
  local body, keep = read_body(sock, deadline, head, method, st.max_body or 64 * 1024 * 1024)
  if not body then return nil, keep end
  st.ngx_bytes = (st.ngx_bytes or 0) + #body
  if keep and reusable(head) then
    sock:setkeepalive(KEEPALIVE_IDLE_MS, POOL_SIZE)
  else
    sock:close()
  end
  return { status = head.status, body = body, retry_after = head.headers["retry-after"] }
end

--- One HTTP exchange, following the io protocol of engine.lua.
-- @return status, body, retry_after|nil, elapsed
-- @return nil, kind, message, retryable, elapsed
local function http(st, method, url, auth, body)
  local started = now()
  local u = split_url(url)
  if not u then return nil, "network", "not an http(s) URL: " .. url, false, 0 end
  local proxy
  if st.proxy then
    proxy = split_url(st.proxy:find("://", 1, true) and st.proxy or ("http://" .. st.proxy))
    if not proxy or proxy.scheme ~= "http" then
      return nil, "network", "inside nginx the proxy must be an http:// proxy, got " .. st.proxy, false, 0
    end
    if not st.proxy:match ":%d+/?$" then proxy.port = 1080 end -- libcurl's default
  end
  local deadline = started + (st.timeout or 10)
  local request = request_text(st, method, u, auth, body, proxy)
  -- A pooled connection the server has closed meanwhile fails at once:
  -- that is not an attempt, so it is repeated on a new connection.
  for _ = 1, 2 do
    local sock, reused, message, retryable = connect(st, u, proxy, deadline)
    if not sock then return nil, reused, message, retryable, now() - started end
    local answer, err, stale = attempt(st, sock, reused, deadline, method, request)
    if answer then
      local retry_after = answer.retry_after and parse_retry_after(answer.retry_after) or nil
      return answer.status, answer.body, retry_after, now() - started
    end
    sock:close()
    if not stale then
      local kind, again = failure(err)
      return nil, kind, failure_message(err, u), again, now() - started
    end
  end
  return nil, "network", "connection to " .. u.host .. " closed", true, now() - started
end

--- The io object for a client inside nginx (see engine.lua).
-- Raises when the current phase has no cosockets (init, set, log,
-- header/body filter, ...).
-- @tparam table st the client's state
-- @treturn table io with http, now, sleep and concurrent = true
function M.io(st)
  check_phase(2)
  local io = st.ngx_io
  if not io then
    io = {
      concurrent = true,
      now = now,
      sleep = function(seconds) ngx.sleep(seconds) end,
      http = http,
    }
    st.ngx_io = io
  end
  return io
end

--- Run fns on light threads (`ngx.thread.spawn`), at most `concurrency` at
-- once, and return their results in order as a list of `{value, err}`.
-- An error raised by one fn is raised again once all have stopped.
-- @tparam table st the client's state
-- @tparam table fns list of functions
-- @tparam number concurrency threads at most
-- @treturn table list of {fn()} in the order of fns
function M.gather(st, fns, concurrency) -- luacheck: ignore st
  check_phase(2)
  local n, out, nxt = #fns, {}, 0
  local function worker()
    while nxt < n do
      nxt = nxt + 1
      local i = nxt
      out[i] = { fns[i]() }
    end
  end
  if n == 1 then
    worker()
    return out
  end
  local threads = {}
  for t = 1, math.min(concurrency or 8, n) do threads[t] = ngx.thread.spawn(worker) end
  local raised
  for t = 1, #threads do
    local ok, err = ngx.thread.wait(threads[t])
    if not ok and raised == nil then raised = err end
  end
  if raised ~= nil then error(raised, 0) end
  return out
end

return M
