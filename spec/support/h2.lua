--- A TLS front for the fake Spotify that speaks HTTP/2: a real nginx with
-- `listen ... ssl http2` proxying to the fake's plain HTTP listener, as in
-- bench/. A second listener on the same nginx speaks TLS without http2, so
-- ALPN settles on HTTP/1.1 there and both protocols see the same answers.
--
--   local front = h2.start(f, { keepalive_requests = 5, reset_at = 4 })
--   front.api_base, front.token_url          HTTP/2 (https://localhost:port)
--   front.h1_api_base, front.h1_token_url    HTTP/1.1 over TLS
--   front.ca_file                            the fake's certificate
--   front:log(want, keep)   nginx's access log: {conn, requests, protocol, status, uri, port}
--   front:complaints()                       [warn] and worse lines of its error log
--   front:stop()
--
-- keepalive_requests: nginx sends GOAWAY after that many streams of a
-- connection. reset_at: the stream of that number on each connection to
-- /v1/tracks/ is answered with RST_STREAM (`return 444`).
local nginx = require "spec.support.nginx"
local files = require "spec.support.files"
local socket = require "socket"

local h2 = {}
local Front = {}
Front.__index = Front

local CONF = [[
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
  log_format front '$connection $connection_requests $server_protocol $status $server_port $request_uri';
  access_log logs/access.log front;
  client_body_temp_path temp/body;
  proxy_temp_path temp/proxy;
  fastcgi_temp_path temp/fastcgi;
  uwsgi_temp_path temp/uwsgi;
  scgi_temp_path temp/scgi;
  keepalive_requests %d;
  http2_max_concurrent_streams 128;
  upstream fake { server 127.0.0.1:%d; keepalive 32; }
  server {
    listen 127.0.0.1:${PORT} ssl http2;
    listen 127.0.0.1:%d ssl;
    ssl_certificate ${PREFIX}/cert.pem;
    ssl_certificate_key ${PREFIX}/key.pem;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # the fake builds paging links from these: they lead back to this front
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-Proto https;
    proxy_buffering off;
    location = /_ready { return 204; }
    location /v1/tracks/ {
      if ($connection_requests = %d) { return 444; }
      proxy_pass http://fake;
    }
    location / { proxy_pass http://fake; }
  }
}
]]

--- Start the front for fake `f` (started with `tls = true`: its certificate
-- is the front's). Raises when nginx does not come up.
function h2.start(f, opts)
  opts = opts or {}
  assert(f.ca_file, "spec/support/h2: start the fake with tls = true")
  local cert = files.read_file(f.ca_file)
  local key = files.read_file((f.ca_file:gsub("cert%.pem$", "key.pem")))
  local last
  for _ = 1, 3 do -- the second port is picked here; another process may take it
    local h1_port = files.free_port()
    local conf = CONF:format(opts.keepalive_requests or 1000, f.port, h1_port, opts.reset_at or 0)
    local ok, server = pcall(nginx.start, { conf = conf, files = { ["cert.pem"] = cert, ["key.pem"] = key } })
    if ok then
      local self = setmetatable({ server = server, port = server.port, h1_port = h1_port, ca_file = f.ca_file }, Front)
      self.api_base = ("https://localhost:%d/v1"):format(server.port)
      self.token_url = ("https://localhost:%d/api/token"):format(server.port)
      self.h1_api_base = ("https://localhost:%d/v1"):format(h1_port)
      self.h1_token_url = ("https://localhost:%d/api/token"):format(h1_port)
      return self
    end
    last = server
  end
  error(last, 0)
end

local function read_log(self)
  local out = {}
  local text = files.read_file(self.server.prefix .. "/logs/access.log") or ""
  for conn, n, protocol, status, port, uri in text:gmatch "(%d+) (%d+) (%S+) (%d+) (%d+) (%S+)\n" do
    out[#out + 1] = { conn = tonumber(conn), requests = tonumber(n), protocol = protocol, status = tonumber(status),
      port = tonumber(port), uri = uri }
  end
  return out
end

--- The access log: one entry per request, in the order nginx finished them,
-- only those for which `keep(entry)` is true when given. nginx writes an
-- entry after the answer has gone out, so this waits (5 s at most) until
-- there are `want` of them.
function Front:log(want, keep)
  local give_up = socket.gettime() + 5
  while true do
    local out = {}
    for _, e in ipairs(read_log(self)) do
      if not keep or keep(e) then out[#out + 1] = e end
    end
    if #out >= (want or 0) or socket.gettime() > give_up then return out end
    socket.sleep(0.02)
  end
end

function Front:complaints() return self.server:complaints() end

function Front:stop()
  if self.server then self.server:stop() end
  self.server = nil
end

return h2
