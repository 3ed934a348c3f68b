--- `make soak-nginx`: SOAK_REQUESTS (default 100 000) requests through an
-- nginx with 2 workers running the module, once with one client per worker
-- and once with a new client for every request, against a static nginx
-- fake of Spotify (as bench/ uses: the Python fake would be the bottleneck).
-- Prints per mode: worker RSS growth after the warm-up (goal under 2 MB),
-- error-log lines (goal 0), token fetches (goal 1) and failed requests
-- (goal 0). It prints figures; it fails only when it cannot run.
--
--   SOAK_REQUESTS=20000 SOAK_CONCURRENCY=16 lua5.4 spec/soak_nginx.lua
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
local nginx = require "spec.support.nginx"
local files = require "spec.support.files"

local REQUESTS = tonumber(os.getenv "SOAK_REQUESTS") or 100000
local CONCURRENCY = tonumber(os.getenv "SOAK_CONCURRENCY") or 16
local WARMUP = math.max(1000, math.floor(REQUESTS / 10))
local ID = "4iV5W9uYEdYUVa79Axb7Rh"

-- The fake: the token endpoint answers inline and logs each fetch; a track
-- is a static file.
local FAKE = [[
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  log_format token '$msec $request_method $request_uri';
  client_body_temp_path temp/body;
  proxy_temp_path temp/proxy;
  fastcgi_temp_path temp/fastcgi;
  uwsgi_temp_path temp/uwsgi;
  scgi_temp_path temp/scgi;
  keepalive_requests 1000000;
  default_type application/json;
  server {
    listen 127.0.0.1:${PORT};
    root ${PREFIX};
    location = /_ready { return 204; }
    location = /api/token {
      access_log logs/token.log token;
      return 200 '{"access_token":"soak-token","token_type":"Bearer","expires_in":3600}';
    }
    location /v1/tracks/ { try_files /track.json =404; }
  }
}
]]

local APP = [[
local spotify = require "spotify"
local options = require "soak_options"
local app, kept = {}, nil

local function new_client()
  local o = {}
  for k, v in pairs(options) do o[k] = v end
  o.cache = spotify.cache.shdict(ngx.shared.spotify_tokens)
  return spotify.client(o)
end

local function answer(c)
  local track, err = c:track("]] .. ID .. [[")
  if not track then
    ngx.status = 502
    ngx.log(ngx.ERR, "soak: ", tostring(err))
    return ngx.say(tostring(err))
  end
  ngx.say(track.id)
end

function app.per_worker()
  kept = kept or new_client()
  answer(kept)
end

-- a client for this request only, left to the garbage collector
function app.per_request() answer(new_client()) end

return app
]]

local SERVER = [[
    location = /per_worker { content_by_lua_block { require("soak_app").per_worker() } }
    location = /per_request { content_by_lua_block { require("soak_app").per_request() } }
]]

local function workers(server)
  local out = {}
  for pid in files.read_command("ps -o pid= --ppid " .. server.pid):gmatch "%d+" do out[#out + 1] = tonumber(pid) end
  table.sort(out)
  return out
end

local function rss_kib(pid)
  local status = files.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(status:match "VmRSS:%s*(%d+)") or 0
end

local function lines(path)
  local n = 0
  for _ in (files.read_file(path) or ""):gmatch "[^\n]+" do n = n + 1 end
  return n
end

-- ab over keep-alive: complete, failed and non-2xx answers, requests per second.
local function load(url, n)
  local out = files.read_command(("ab -q -k -n %d -c %d '%s' 2>&1"):format(n, CONCURRENCY, url))
  local complete = tonumber(out:match "Complete requests:%s*(%d+)")
  if not complete then error("soak-nginx: ab failed:\n" .. out) end
  return { complete = complete, failed = tonumber(out:match "Failed requests:%s*(%d+)") or 0,
    non2xx = tonumber(out:match "Non%-2xx responses:%s*(%d+)") or 0,
    rps = tonumber(out:match "Requests per second:%s*([%d.]+)") or 0 }
end

local function run(mode, fake)
  local options = ('return { client_id = "soak-id", client_secret = "soak-secret", api_base = %q, token_url = %q }')
    :format(fake.base .. "/v1", fake.base .. "/api/token")
  local server = nginx.start {
    workers = 2,
    http = table.concat({ nginx.package_paths(), "lua_shared_dict spotify_tokens 1m;", "lua_socket_log_errors off;",
      "keepalive_requests 1000000;", "init_by_lua_block { require 'spotify' }" }, "\n  "),
    server = SERVER,
    files = { ["soak_app.lua"] = APP, ["soak_options.lua"] = options },
  }
  local ok, result = pcall(function()
    local tokens0 = lines(fake.prefix .. "/logs/token.log")
    local url = server.base .. "/" .. mode
    local warm = load(url, WARMUP)
    local pids = workers(server)
    local before = {}
    for i, pid in ipairs(pids) do before[i] = rss_kib(pid) end
    local t0 = os.time()
    local main = load(url, REQUESTS - WARMUP)
    local growth = {}
    for i, pid in ipairs(pids) do growth[i] = rss_kib(pid) - before[i] end
    return { warm = warm, main = main, pids = pids, before = before, growth = growth, seconds = os.time() - t0,
      tokens = lines(fake.prefix .. "/logs/token.log") - tokens0, errors = lines(server.prefix .. "/logs/error.log") }
  end)
  server:stop()
  if not ok then error(result, 0) end
  return result
end

local track = assert(files.read_file "spec/support/fixtures/track.json")
local fake = nginx.start { conf = FAKE, files = { ["track.json"] = track } }
local ok, err = pcall(function()
  print(("soak-nginx: %d requests per mode (%d of them warm-up), %d in flight, 2 workers"):format(REQUESTS, WARMUP,
    CONCURRENCY))
  for _, mode in ipairs { "per_worker", "per_request" } do
    local r = run(mode, fake)
    local failed = r.warm.failed + r.warm.non2xx + r.main.failed + r.main.non2xx
    local parts, worst = {}, 0
    for i, pid in ipairs(r.pids) do
      parts[#parts + 1] = ("worker %d: %d KiB, %+d KiB"):format(pid, r.before[i], r.growth[i])
      worst = math.max(worst, r.growth[i])
    end
    print(("== client %s: %d requests, %d failed, %.0f req/s after warm-up"):format(mode:gsub("_", " "),
      r.warm.complete + r.main.complete, failed, r.main.rps))
    print("   RSS growth after warm-up: " .. table.concat(parts, "; ")
      .. (" (goal under 2048 KiB: %s)"):format(worst < 2048 and "met" or "NOT met"))
    print(("   error-log lines: %d (goal 0: %s)"):format(r.errors, r.errors == 0 and "met" or "NOT met"))
    print(("   token fetches: %d (goal 1: %s)"):format(r.tokens, r.tokens == 1 and "met" or "NOT met"))
  end
end)
fake:stop()
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
