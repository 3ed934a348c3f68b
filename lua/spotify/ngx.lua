--- The nginx driver: runs the C core's exchange machine over cosockets, so
-- a request never blocks the worker's event loop. It only moves bytes,
-- sleeps and calls the cache when the machine asks (core.exchange); every
-- decision (status classes, retries, backoff, tokens, single flight) is the
-- machine's, exactly as with libcurl. HTTP/1.1 over cosockets:
--
-- Connections are kept in nginx's cosocket pool (`setkeepalive`), one pool
-- per scheme, host and port. TLS always verifies the peer against
-- `lua_ssl_trusted_certificate` (nginx has no per-socket trust store, so the
-- client's `ca_file` cannot apply here). A `proxy` must be an http://
-- proxy: absolute-form requests for http://, a CONNECT tunnel for https://.
-- @module spotify.ngx
local batch = require "spotify.batch"
local core = require "spotify.core"

local now, new_exchange, env_of = core.now, core.exchange, core.env
local revalidations = core.revalidations
local concat, tonumber, lower, pcall = table.concat, tonumber, string.lower, pcall

local M = {}

local MAX_HEADERS = 100
-- Every read is bounded: a header line, all header lines, a chunk-size or
-- trailer line, and the body (max_body), whatever the peer sends.
local MAX_LINE = 8 * 1024
local MAX_HEAD = 64 * 1024
local READ_SIZE = 64 * 1024
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

local function request_text(t, method, u, auth, body, proxy, language, if_none_match, if_modified_since)
  -- Through a plain proxy an http:// request names its whole URL;
  -- https:// goes through a CONNECT tunnel and looks as without a proxy.
  local target = (proxy and u.scheme == "http") and (u.scheme .. "://" .. u.host_header .. u.path) or u.path
  local lines = {
    method .. " " .. target .. " HTTP/1.1",
    "Host: " .. u.host_header,
    "Accept: application/json",
    "Accept-Encoding: gzip",
  }
  if t.user_agent then lines[#lines + 1] = "User-Agent: " .. t.user_agent end
  if auth then lines[#lines + 1] = "Authorization: " .. auth end
  if language then lines[#lines + 1] = "Accept-Language: " .. language end -- API requests only
  if t.api_key then lines[#lines + 1] = "X-Api-Key: " .. t.api_key end -- a gateway's client
  -- a conditional request: the validators of the expired answer it asks about
  if if_none_match then lines[#lines + 1] = "If-None-Match: " .. if_none_match end
  if if_modified_since then lines[#lines + 1] = "If-Modified-Since: " .. if_modified_since end
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

-- A buffered reader over one socket. Each read asks for what has arrived
-- (at most READ_SIZE) and never waits past the deadline, so `timeout`
-- bounds the whole request as with libcurl, not each idle gap.
local Reader = {}
Reader.__index = Reader

local function reader(sock, deadline)
  return setmetatable({ sock = sock, deadline = deadline, buf = "", pos = 1 }, Reader)
end

function Reader:buffered() return #self.buf - self.pos + 1 end

function Reader:fill()
  if not arm(self.sock, self.deadline) then return nil, "timeout" end
  local data, err = self.sock:receiveany(READ_SIZE)
  if not data then return nil, err end
  self.buf, self.pos = self.buf:sub(self.pos) .. data, 1
  return true
end

-- One line without its CRLF (or LF), of at most `max` bytes.
function Reader:line(max)
  while true do
    local i = self.buf:find("\n", self.pos, true)
    if i then
      if i - self.pos > max then return nil, "line too long" end
      local line = self.buf:sub(self.pos, i - 1)
      self.pos = i + 1
      if line:sub(-1) == "\r" then line = line:sub(1, -2) end
      return line
    end
    if self:buffered() > max then return nil, "line too long" end
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
end

-- Exactly n bytes.
function Reader:bytes(n)
  local parts = {}
  while n > 0 do
    if self:buffered() == 0 then
      local ok, err = self:fill()
      if not ok then return nil, err end
    end
    local take = math.min(self:buffered(), n)
    parts[#parts + 1] = self.buf:sub(self.pos, self.pos + take - 1)
    self.pos, n = self.pos + take, n - take
  end
  return concat(parts)
end

-- Everything up to the end of the connection, at most max bytes.
function Reader:rest(max)
  local parts, total = {}, 0
  while true do
    local n = self:buffered()
    if n > 0 then
      total = total + n
      if total > max then return nil, "too big" end
      parts[#parts + 1] = self.buf:sub(self.pos)
      self.buf, self.pos = "", 1
    end
    local ok, err = self:fill()
    if not ok then
      if err == "closed" then return concat(parts) end
      return nil, err
    end
  end
end

-- A TLS failure that retrying cannot cure: the certificate was refused.
local function verify_failure(err)
  return err:match "^%d+:" ~= nil or err:find("certificate", 1, true) ~= nil
end

-- lua-resty-core (0.1.25) raises "assertion failed!" where a handshake that
-- finished at once failed, as a refused certificate does: it asks nginx for
-- the result a second time. nginx still holds the failure on the socket, so
-- it is read from there, and the error reads as any refused handshake does.
local function recorded_handshake_failure(sock, raised)
  local ok, detail = pcall(function()
    local ffi, base = require "ffi", require "resty.core.base"
    local session, message, code = ffi.new "void *[1]", ffi.new "char *[1]", ffi.new "int[1]"
    local rc = ffi.C.ngx_http_lua_ffi_socket_tcp_get_sslhandshake_result(base.get_request(), sock[1],
      session, message, code)
    if rc ~= base.FFI_ERROR or message[0] == nil then return nil end
    local text = ffi.string(message[0])
    return code[0] ~= 0 and (code[0] .. ": " .. text) or text
  end)
  return ok and detail or "certificate verify failed (" .. tostring(raised) .. ")"
end

local read_head

-- Ask the proxy for a tunnel to u. Returns true or nil, failure, detail.
local function tunnel(sock, u, deadline)
  local authority = u.host_header:find(":%d+$") and u.host_header or (u.host_header .. ":" .. u.port)
  if not arm(sock, deadline) then return nil, "timeout", "proxy CONNECT timed out" end
  local ok, err = sock:send("CONNECT " .. authority .. " HTTP/1.1\r\nHost: " .. authority .. "\r\n\r\n")
  local head
  if ok then head, err = read_head(reader(sock, deadline)) end
  if not head then
    if err == "timeout" then return nil, "timeout", "proxy CONNECT timed out" end
    return nil, "connect", "proxy CONNECT failed: " .. tostring(err)
  end
  if head.status ~= 200 then
    return nil, "unusable", "proxy refused CONNECT to " .. authority .. " (HTTP " .. head.status .. ")"
  end
  return true
end

--- Open (or take from the pool) a connection to u, directly or through the
-- proxy; tunnel and handshake run only on a new one.
-- Returns sock, reused or nil, failure, detail.
local function connect(t, u, proxy, deadline)
  local sock = ngx.socket.tcp()
  local connect_ms = math.floor(math.min(t.connect_timeout, math.max(deadline - now(), 0.001)) * 1000)
  sock:settimeout(math.max(1, connect_ms))
  local peer = proxy or u
  local pool = "spotify:" .. u.scheme .. ":" .. u.host .. ":" .. u.port
  if proxy then pool = pool .. "@" .. proxy.host .. ":" .. proxy.port end
  local ok, err = sock:connect(address(peer.host), peer.port, { pool = pool, pool_size = POOL_SIZE })
  if not ok then
    if err == "timeout" then return nil, "timeout", "connect to " .. peer.host .. " timed out" end
    return nil, "connect", "cannot connect to " .. peer.host .. ":" .. peer.port .. ": " .. err
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if reused then return sock, true end
  if proxy and u.scheme == "https" then
    local failure, detail
    ok, failure, detail = tunnel(sock, u, deadline)
    if not ok then
      sock:close()
      return nil, failure, detail
    end
  end
  if u.scheme == "https" then
    if not arm(sock, deadline) then
      sock:close()
      return nil, "timeout", "TLS handshake with " .. u.host .. " timed out"
    end
    local session
    local ok_call
    ok_call, session, err = pcall(sock.sslhandshake, sock, nil, u.host, true)
    if not ok_call then session, err = nil, recorded_handshake_failure(sock, session) end
    if not session then
      sock:close()
      if err == "timeout" then return nil, "timeout", "TLS handshake with " .. u.host .. " timed out" end
      return nil, verify_failure(err) and "tls_verify" or "tls",
        "TLS handshake with " .. u.host .. " failed: " .. tostring(err)
    end
  end
  return sock, false
end

read_head = function(r)
  local line, err = r:line(MAX_LINE)
  if not line then return nil, err end
  local minor, code = line:match "^HTTP/1%.([01]) (%d%d%d)"
  if not code then return nil, "malformed status line" end
  local headers, count, size = {}, 0, #line
  while true do
    line, err = r:line(MAX_LINE)
    if not line then return nil, err end
    if line == "" then break end
    count, size = count + 1, size + #line
    if count > MAX_HEADERS then return nil, "too many headers" end
    if size > MAX_HEAD then return nil, "headers too large" end
    local name, value = line:match "^([^:]+):%s*(.-)%s*$"
    if name then headers[lower(name)] = value end
  end
  return { status = tonumber(code), headers = headers, http10 = minor == "0" }
end

local function read_chunked(r, max_body)
  local parts, total = {}, 0
  while true do
    local line, err = r:line(MAX_LINE)
    if not line then return nil, err end
    local hex = line:match "^%s*(%x+)"
    local size = hex and #hex <= 12 and tonumber(hex, 16)
    if not size then return nil, "malformed chunk size" end
    if size == 0 then break end
    total = total + size
    if total > max_body then return nil, "too big" end
    local data
    data, err = r:bytes(size)
    if not data then return nil, err end
    parts[#parts + 1] = data
    data, err = r:bytes(2)
    if data ~= "\r\n" then return nil, err or "malformed chunk" end
  end
  local trailer = 0
  repeat -- trailer lines, up to the empty one
    local line, err = r:line(MAX_LINE)
    if not line then return nil, err end
    trailer = trailer + #line
    if trailer > MAX_HEAD then return nil, "headers too large" end
  until line == ""
  return concat(parts)
end

-- Returns body, keep_alive or nil, err.
local function read_body(r, head, method, max_body)
  local status, h = head.status, head.headers
  if method == "HEAD" or status == 204 or status == 304 then
    return "", true
  end
  if h["transfer-encoding"] and lower(h["transfer-encoding"]):find("chunked", 1, true) then
    local body, err = read_chunked(r, max_body)
    if not body then return nil, err end
    return body, true
  end
  local length = h["content-length"]
  if length then
    local n = length:match "^%d+$" and tonumber(length)
    if not n then return nil, "malformed Content-Length" end
    if n > max_body then return nil, "too big" end
    if n == 0 then return "", true end
    local body, err = r:bytes(n)
    if not body then return nil, err end
    return body, true
  end
  -- Neither: the body runs to the end of the connection.
  local body, err = r:rest(max_body)
  if not body then return nil, err end
  return body, false
end

-- zlib through LuaJIT's FFI: nginx links it already; loaded on the first
-- gzip answer.
local zlib
local function load_zlib()
  if zlib ~= nil then return zlib end
  zlib = false
  local has_ffi, ffi = pcall(require, "ffi")
  if not has_ffi then return zlib end
  pcall(ffi.cdef, [[
    typedef struct z_stream_s {
      const unsigned char *next_in; unsigned int avail_in; unsigned long total_in;
      unsigned char *next_out; unsigned int avail_out; unsigned long total_out;
      const char *msg; void *state; void *zalloc; void *zfree; void *opaque;
      int data_type; unsigned long adler; unsigned long reserved;
    } z_stream;
    const char *zlibVersion(void);
    int inflateInit2_(z_stream *strm, int windowBits, const char *version, int stream_size);
    int inflate(z_stream *strm, int flush);
    int inflateEnd(z_stream *strm);
  ]]) -- fails only when the same declarations are there already
  local linked = pcall(function() return ffi.C.inflate end)
  local ok, lib = true, ffi.C
  if not linked then ok, lib = pcall(ffi.load, "z") end
  if ok then zlib = { ffi = ffi, lib = lib } end
  return zlib
end

local INFLATE_STEP = 64 * 1024
local Z_OK, Z_STREAM_END, Z_NO_FLUSH = 0, 1, 0

-- Inflates a gzip body step by step: at most max_body bytes ever come out,
-- so a gzip bomb ends as "too big" before it can grow. Returns text or nil, err.
local function gunzip(data, max_body)
  local z = load_zlib()
  if not z then return nil, "gzip answer but no zlib through the FFI here" end
  local ffi, lib = z.ffi, z.lib
  local strm = ffi.new "z_stream[1]"
  if lib.inflateInit2_(strm, 15 + 16, lib.zlibVersion(), ffi.sizeof "z_stream") ~= Z_OK then
    return nil, "gzip: cannot start inflating"
  end
  local out = ffi.new("unsigned char[?]", INFLATE_STEP)
  strm[0].next_in, strm[0].avail_in = data, #data
  local parts, total, ret = {}, 0
  repeat
    strm[0].next_out, strm[0].avail_out = out, INFLATE_STEP
    ret = lib.inflate(strm, Z_NO_FLUSH)
    local n = INFLATE_STEP - strm[0].avail_out
    total = total + n
    if total > max_body then
      ret = "too big"
      break
    end
    if n > 0 then parts[#parts + 1] = ffi.string(out, n) end
  until ret ~= Z_OK or (strm[0].avail_in == 0 and strm[0].avail_out > 0)
  local msg = strm[0].msg ~= nil and ffi.string(strm[0].msg) or nil
  lib.inflateEnd(strm)
  if ret == Z_STREAM_END then return concat(parts) end
  if ret == "too big" then return nil, ret end
  if ret == Z_OK or ret == -5 then return nil, "gzip stream truncated" end -- -5: Z_BUF_ERROR
  return nil, "malformed gzip stream" .. (msg and (": " .. msg) or "")
end

-- The body as sent, decoded per Content-Encoding (we ask for gzip only).
local function decode_body(body, head, max_body)
  local coding = head.headers["content-encoding"]
  coding = coding and lower(coding)
  if not coding or coding == "" or coding == "identity" or body == "" then return body end
  if coding == "gzip" or coding == "x-gzip" then return gunzip(body, max_body) end
  return nil, "unknown content encoding " .. coding
end

local function reusable(head)
  local c = head.headers.connection and lower(head.headers.connection) or ""
  if head.http10 then return c:find("keep-alive", 1, true) ~= nil end
  return c:find("close", 1, true) == nil
end

-- What went wrong, in the machine's words (src/policy.c decides what it
-- means), and a description.
local function failure_of(err, u)
  if err == "too big" then return "too_big", "response body larger than max_body" end
  if err == "too many headers" or err == "headers too large" or err == "line too long" then
    return "too_many_headers", "response headers too many or too large"
  end
  if err == "timeout" then return "timeout", "request to " .. u.host .. " timed out" end
  if type(err) == "string" and (err:find("gzip", 1, true) or err:find("content encoding", 1, true)) then
    return "broken", "answer from " .. u.host .. " unreadable: " .. err
  end
  return "broken", "connection to " .. u.host .. " failed: " .. tostring(err)
end

-- One attempt over one connection. Returns the answer table, or nil, err,
-- stale (stale: a pooled connection failed before any byte of the answer).
local function attempt(t, sock, reused, deadline, method, request)
  if not arm(sock, deadline) then return nil, "timeout" end
  local sent, err = sock:send(request)
  if not sent then return nil, err, reused end
  local head
  local r = reader(sock, deadline)
  for _ = 1, 5 do -- informational answers (1xx) come before the real one
    head, err = read_head(r)
    if not head then return nil, err, reused and (err == "closed" or err == "connection reset by peer") end
    if head.status >= 200 then break end
  end
  if head.status < 200 then return nil, "too many informational answers" end
  local body, keep = read_body(r, head, method, t.max_body)
  if not body then return nil, keep end
  local decoded, why = decode_body(body, head, t.max_body)
  if not decoded then return nil, why end
  -- bytes beyond the answer: the connection is out of step, never reused
  if keep and reusable(head) and r:buffered() == 0 then
    sock:setkeepalive(KEEPALIVE_IDLE_MS, POOL_SIZE)
  else
    sock:close()
  end
  local h = head.headers
  return { status = head.status, body = decoded, retry_after = h["retry-after"],
    cache_control = h["cache-control"], etag = h.etag, last_modified = h["last-modified"] }
end

-- A proxy option as a URL table, or nil, detail when it cannot be used.
local function proxy_of(t)
  if not t.proxy then return false end
  local proxy = split_url(t.proxy:find("://", 1, true) and t.proxy or ("http://" .. t.proxy))
  if not proxy or proxy.scheme ~= "http" then
    return nil, "inside nginx the proxy must be an http:// proxy, got " .. t.proxy
  end
  if not t.proxy:match ":%d+/?$" then proxy.port = 1080 end -- libcurl's default
  return proxy
end

--- One HTTP exchange, reported to the machine: x:response for an answer,
-- x:failure when there was none. Returns the machine's next action.
-- `seen`, when given, gets the headers of the answer a gateway passes on.
local function send(x, t, method, url, auth, body, language, if_none_match, if_modified_since, seen)
  local started = now()
  local u = split_url(url)
  if not u then return x:failure("unusable", "not an http(s) URL: " .. url, 0, 0) end
  local proxy, why = proxy_of(t)
  if proxy == nil then return x:failure("unusable", why, 0, 0) end
  proxy = proxy or nil
  local deadline = started + t.timeout
  local request = request_text(t, method, u, auth, body, proxy, language, if_none_match, if_modified_since)
  local opened = 0
  -- A pooled connection the server has closed meanwhile fails at once:
  -- that is not an attempt, so it is repeated on a new connection.
  for _ = 1, 2 do
    local sock, reused, detail = connect(t, u, proxy, deadline)
    if not sock then return x:failure(reused, detail, now() - started, opened) end
    if not reused then opened = opened + 1 end
    local answer, err, stale = attempt(t, sock, reused, deadline, method, request)
    if answer then
      if seen then seen.cache_control, seen.etag = answer.cache_control, answer.etag end
      return x:response(answer.status, answer.body, answer.retry_after, now() - started, opened,
        answer.cache_control, answer.etag, answer.last_modified)
    end
    sock:close()
    if not stale then
      local failure, text = failure_of(err, u)
      return x:failure(failure, text, now() - started, opened)
    end
  end
  return x:failure("broken", "connection to " .. u.host .. " closed", now() - started, opened)
end

-- Run the machine to its end: send, sleep and call the cache as it asks.
local function drive(self, x, seen)
  local act, a, b, c, d, e, g, k = x:step()
  while true do
    if act == "send" then
      local env = env_of(self)
      if not env then
        act, a, b, c, d, e, g, k = x:failure("unusable", "client is closed", 0, 0)
      else
        -- Whatever the peer sends, the machine hears of it as a failure:
        -- an answer this code cannot read must not leave it waiting.
        local ok, r1, r2, r3, r4, r5, r6, r7, r8 = pcall(send, x, env.transport, a, b, c, d, e, g, k, seen)
        if ok then
          act, a, b, c, d, e, g, k = r1, r2, r3, r4, r5, r6, r7, r8
        else
          act, a, b, c, d, e, g, k = x:failure("broken", "unreadable answer: " .. tostring(r1), 0, 0)
        end
      end
    elseif act == "wait" then
      ngx.sleep(math.max(a, 0.001)) -- nginx's timers count milliseconds; 0 would warn
      act, a, b, c, d, e, g, k = x:step()
    elseif act == "cache" then
      -- a: the operation, b, c, d: its arguments. Lua caches (shdict,
      -- resty.redis) may yield, so the driver calls them, not C.
      local cache = x:cache_object()
      local fn = cache and cache[a]
      if fn == nil then
        act, a, b, c, d, e, g, k = x:cache(nil)
      else
        local ok, r = pcall(fn, cache, b, c, d)
        act, a, b, c, d, e, g, k = x:cache(ok, r)
      end
    else
      return a, b
    end
  end
end

-- stale_while_revalidate: an answer handed out expired is renewed by one
-- request from a timer, a context of its own, so the caller is answered
-- at once. The core queues each key once until its renewal ends.
local function renew(premature, self, url, name)
  if premature or not env_of(self) then return end
  local ok, err = pcall(drive, self, new_exchange(self, "api", "GET", url, name or nil, true, true))
  if not ok then ngx.log(ngx.WARN, "spotify: renewing an answer raised: ", tostring(err)) end
end

--- Start the renewals of the answers this client handed out expired.
-- A timer nginx refuses leaves the key to be queued again later.
function M.renew_handed_out(self)
  local list = revalidations(self)
  for i = 1, #list, 2 do ngx.timer.at(0, renew, self, list[i], list[i + 1]) end
end

--- GET a URL of the API and decode it, over cosockets.
-- Raises when the current phase has no cosockets (init, set, log,
-- header/body filter, ...).
-- @return the decoded value, or nil, err
function M.get(self, url, name)
  check_phase(2)
  local value, err = drive(self, new_exchange(self, "api", "GET", url, name))
  M.renew_handed_out(self)
  return value, err
end

--- GET a URL of the API as text, over cosockets: what a gateway hands on.
-- `seen` gets the Cache-Control and ETag of Spotify's answer when one came
-- in (not for an answer of the response cache).
-- @return text, status, or nil, err
function M.get_raw(self, url, name, seen)
  check_phase(2)
  local text, status = drive(self, new_exchange(self, "api", "GET", url, name, true), seen)
  M.renew_handed_out(self)
  return text, status
end

--- The client's token, fetched or renewed over cosockets when needed.
-- @return token, seconds_left, or nil, err
function M.access_token(self)
  check_phase(2)
  return drive(self, new_exchange(self, "token", "POST", ""))
end

-- Send a closed window and wake its callers. It runs in a timer, a
-- context of its own: a window is answered whatever happens to the light
-- threads that joined it (killed, their client gone, timed out).
local function send_window(premature, self, env, w, get_all) -- luacheck: ignore 212
  if w.sent then return end
  if not w.closed then batch.close(env, w) end
  local ok, raised = pcall(batch.send, self, env, { w }, get_all)
  for _, waiter in ipairs(w.waiters) do
    if not ok and not waiter.done then waiter.raised, waiter.done = raised, true end
  end
  w.sema:post(#w.waiters)
end

-- How long past its time a window's timer may be late before a caller
-- sends the window itself (nginx dropped the timer: lua_max_running_timers).
local TAKEOVER = 0.5

-- w is due at `due`: a timer sends it then. When nginx refuses the timer
-- (lua_max_pending_timers) or never runs it, a caller sends it instead.
local function schedule(self, env, w, due, get_all)
  local ok = ngx.timer.at(math.max(due - now(), 0), send_window, self, env, w, get_all)
  w.takeover = due + (ok and TAKEOVER or 0)
end

--- Single lookups in their batch windows (batch_window), among the light
-- threads and requests of this worker: a window is sent from a timer
-- batch_window after it opened, or at once when full; its callers wait.
-- get_all: the caller's driver (calls.get_all). @return one settled waiter per ID
function M.batch_lookup(self, env, spec, ids, get_all)
  check_phase(2)
  local waiters = {}
  for i = 1, #ids do
    local w, waiter, opened = batch.join(env, spec, ids[i])
    waiters[i] = waiter
    if opened then
      w.sema = require("ngx.semaphore").new(0)
      schedule(self, env, w, w.deadline, get_all)
    end
    if w.closed and not w.sent then schedule(self, env, w, now(), get_all) end
  end
  -- Far longer than a batch GET may take; then the caller goes out alone.
  local t = env.transport
  local give_up = now() + env.batch_window + (t.timeout + t.connect_timeout) * 4
  for _, waiter in ipairs(waiters) do
    local w = waiter.window
    while not waiter.done and now() < give_up do
      if not w.sent and now() >= w.takeover then
        send_window(false, self, env, w, get_all)
      else
        local until_ = w.sent and give_up or math.min(w.takeover, give_up)
        w.sema:wait(math.max(until_ - now(), 0.001))
      end
    end
    if not waiter.done then waiter.single, waiter.done = true, true end
    if waiter.raised ~= nil then error(waiter.raised, 0) end
  end
  return waiters
end

--- GET every URL on light threads (`ngx.thread.spawn`), at most
-- `concurrency` at once. An error raised by one is raised again once all
-- have stopped.
-- @return values, errs (by index)
function M.get_all(self, urls, concurrency, name)
  check_phase(2)
  local n, values, errs, nxt = #urls, {}, {}, 0
  local function worker()
    while nxt < n do
      nxt = nxt + 1
      local i = nxt
      values[i], errs[i] = M.get(self, urls[i], name)
    end
  end
  local threads = {}
  for t = 1, math.min(concurrency, n) do threads[t] = ngx.thread.spawn(worker) end
  local raised
  for t = 1, #threads do
    local ok, err = ngx.thread.wait(threads[t])
    if not ok and raised == nil then raised = err end
  end
  if raised ~= nil then error(raised, 0) end
  return values, errs
end

return M
