--- `make soak-nginx`: SOAK_REQUESTS (default 100 000) requests through an
-- nginx with 2 workers running the module, once with one client per worker
-- and once with a new client for every request, against a static nginx
-- fake of Spotify (as bench/ uses: the Python fake would be the bottleneck).
-- Prints per mode: worker RSS growth after the warm-up (goal under 2 MB),
-- error-log lines (goal 0), token fetches (goal 1) and failed requests
-- (goal 0). It prints figures; it fails only when it cannot run.
--
-- The gateway mode: examples/gateway (2 workers, answers kept 2 s so
-- misses recur) asked for 1,000 track IDs at random by wrk, against a fake
-- that also answers 1 % of its requests 429 (Retry-After: 1) and drops 1 %
-- of its connections: worker RSS growth after the warm-up (goal under
-- 5 MiB), error-log lines above warn (goal 0), and every answer either the
-- asked track, whole, or an error in Spotify's shape (goal: no other).
--
--   SOAK_REQUESTS=20000 SOAK_CONCURRENCY=16 SOAK_MODES=gateway lua5.4 spec/soak_nginx.lua
--   (SOAK_BATCH_WINDOW: the gateway's batch_window, SOAK_LRU its process tier's
--   entries; default the example's)
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
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
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
  lua_package_path "$prefix/?.lua;;";
  lua_socket_log_errors off;
  server {
    listen 127.0.0.1:${PORT};
    root ${PREFIX};
    location = /_ready { return 204; }
    location = /api/token {
      access_log logs/token.log token;
      return 200 '{"access_token":"soak-token","token_type":"Bearer","expires_in":3600}';
    }
    location /v1/tracks/ { try_files /track.json =404; }
    # the gateway mode: any track ID, one or a batch, with 429s and drops
    location /v2/ { content_by_lua_block { require("soak_fake").answer() } }
  }
}
]]

-- The gateway mode's Spotify (in the fake nginx, under /v2): the fixture
-- with the asked ID in place of its own; 1 % 429, 1 % dropped.
local SOAK_FAKE = [[
local M = {}
local f = assert(io.open((ngx.config.prefix():gsub("/?$", "/")) .. "track.json"))
local track = f:read "*a"
f:close()
local OWN = track:match '"id"%s*:%s*"(%w+)"'
local function one(id) return (track:gsub(OWN, id)) end
function M.answer()
  local r = math.random()
  if r < 0.01 then
    ngx.status = 429
    ngx.header["Retry-After"] = "1"
    return ngx.say '{"error":{"status":429,"message":"API rate limit exceeded"}}'
  end
  if r < 0.02 then return ngx.exit(444) end -- the connection closed, no answer
  ngx.header["Content-Type"] = "application/json"
  local id = ngx.var.uri:match "^/v2/tracks/(%w+)$"
  if id then return ngx.print(one(id)) end
  local items = {}
  for each in (ngx.var.arg_ids or ""):gsub("%%2[Cc]", ","):gmatch "[^,]+" do items[#items + 1] = one(each) end
  ngx.print('{"tracks":[' .. table.concat(items, ",") .. "]}")
end
return M
]]

-- wrk's script: 1,000 IDs at random; every answer the asked track, whole
-- (all of its S-IDs one and the same: id, href, uri), or Spotify's error
-- shape; counted per thread, summed in done().
local WRK = [[
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
right, errors, bad, sample = 0, 0, 0, nil
function request()
  return wrk.format("GET", ("/v1/tracks/S%021d"):format(math.random(1, 1000)))
end
function response(status, headers, body)
  if status == 200 then
    local first, same, n = nil, true, 0
    for id in body:gmatch "S%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d" do
      first = first or id
      same = same and id == first
      n = n + 1
    end
    if n >= 3 and same and body:match "}%s*$" then right = right + 1 return end
  elseif body:match '^%s*{%s*"error"%s*:%s*{' and body:match '"status"%s*:%s*' .. status then
    errors = errors + 1
    return
  end
  bad = bad + 1
  sample = sample or (status .. " " .. body:sub(1, 200))
end
function done()
  local r, e, b, s = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    r, e, b = r + t:get "right", e + t:get "errors", b + t:get "bad"
    s = s .. (t:get "sample" or "")
  end
  io.write(("soak: right=%d errors=%d bad=%d sample=%s\n"):format(r, e, b, s))
end
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

-- The worker's own memory (Lua heap, malloc): its RSS without the pages of
-- the shared dicts it touched (a dict of answers fills for a long time).
local function anon_kib(pid)
  local status = files.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(status:match "RssAnon:%s*(%d+)") or 0
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

-- Lines of the error log above warn.
local function above_warn(server)
  local n = 0
  for _, line in ipairs(server:complaints()) do
    if not line:find "%[warn%]" then n = n + 1 end
  end
  return n
end

local function run_gateway(fake)
  local gateway = require "spec.support.gateway"
  local script = fake.prefix .. "/soak_wrk.lua"
  files.write_file(script, WRK)
  local lua = assert(files.read_file "examples/gateway/gateway.lua"):gsub("track = 86400", "track = 2")
    :gsub("lru = 2000", "lru = " .. (os.getenv "SOAK_LRU" or "2000"))
  local node = gateway.start({ api_base = fake.base .. "/v2", token_url = fake.base .. "/api/token" },
    { workers = 2, gateway_lua = lua, env = { SPOTIFY_BATCH_WINDOW = os.getenv "SOAK_BATCH_WINDOW" } })
  local ok, result = pcall(function()
    local function load_n(n)
      -- wrk runs for a time, not a count: run it in slices of about n requests
      local text = files.read_command(("wrk -t2 -c%d -d%ds -s %s '%s' 2>&1")
        :format(CONCURRENCY, math.max(1, math.floor(n / 2000)), script, node.base .. "/tracks/x"))
      local right, errors, bad, sample = text:match "soak: right=(%d+) errors=(%d+) bad=(%d+) sample=([^\n]*)"
      if not right then error("soak-nginx: wrk failed:\n" .. text) end
      return { right = tonumber(right), errors = tonumber(errors), bad = tonumber(bad), sample = sample,
        rps = tonumber(text:match "Requests/sec:%s*([%d.]+)") or 0 }
    end
    local warm = load_n(WARMUP)
    local pids = workers(node.server)
    local before = {}
    for i, pid in ipairs(pids) do before[i] = anon_kib(pid) end
    local main = { right = 0, errors = 0, bad = 0, sample = "", rps = 0 }
    while main.right + main.errors + main.bad < REQUESTS - WARMUP do
      local slice = load_n(math.min(20000, REQUESTS - WARMUP))
      for _, k in ipairs { "right", "errors", "bad" } do main[k] = main[k] + slice[k] end
      main.sample = main.sample ~= "" and main.sample or slice.sample
      main.rps = slice.rps
    end
    local growth = {}
    for i, pid in ipairs(pids) do growth[i] = anon_kib(pid) - before[i] end
    return { warm = warm, main = main, pids = pids, before = before, growth = growth,
      errors = above_warn(node.server) }
  end)
  node:stop()
  if not ok then error(result, 0) end
  return result
end

local function report_gateway(r)
  local parts, worst = {}, 0
  for i, pid in ipairs(r.pids) do
    parts[#parts + 1] = ("worker %d: %d KiB, %+d KiB"):format(pid, r.before[i], r.growth[i])
    worst = math.max(worst, r.growth[i])
  end
  local total = r.warm.right + r.warm.errors + r.warm.bad + r.main.right + r.main.errors + r.main.bad
  print(("== gateway: %d requests over 1000 IDs (1 %% 429, 1 %% dropped upstream), %.0f req/s after warm-up")
    :format(total, r.main.rps))
  print(("   answers: %d the asked track, %d Spotify-shaped errors, %d other (goal 0: %s)%s"):format(
    r.warm.right + r.main.right, r.warm.errors + r.main.errors, r.warm.bad + r.main.bad,
    r.warm.bad + r.main.bad == 0 and "met" or "NOT met",
    (r.warm.sample .. r.main.sample) ~= "" and (" e.g. " .. r.warm.sample .. r.main.sample) or ""))
  print("   RSS growth after warm-up (anonymous: without the shared dicts' pages): " .. table.concat(parts, "; ")
    .. (" (goal under 5120 KiB: %s)"):format(worst < 5120 and "met" or "NOT met"))
  print(("   error-log lines above warn: %d (goal 0: %s)"):format(r.errors, r.errors == 0 and "met" or "NOT met"))
end

local function report_client(mode, r)
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

local MODES = {}
for mode in (os.getenv "SOAK_MODES" or "per_worker,per_request,gateway"):gmatch "[^,%s]+" do
  MODES[#MODES + 1] = mode
end

local track = assert(files.read_file "spec/support/fixtures/track.json")
local fake = nginx.start { conf = FAKE, files = { ["track.json"] = track, ["soak_fake.lua"] = SOAK_FAKE } }
local ok, err = pcall(function()
  print(("soak-nginx: %d requests per mode (%d of them warm-up), %d in flight, 2 workers"):format(REQUESTS, WARMUP,
    CONCURRENCY))
  for _, mode in ipairs(MODES) do
    if mode == "gateway" then
      report_gateway(run_gateway(fake))
    else
      report_client(mode, run(mode, fake))
    end
  end
end)
fake:stop()
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
