--- Memory held by clients that are gone. Prints one line per phase:
--   20,000 clients made and dropped (no I/O), then 2,000 that each fetch a
--   token; RSS after a full GC, against the RSS after a warm-up client.
-- With `nginx` as argument: 5,000 requests through one nginx worker, each
-- making its own client (shared-dict cache), worker RSS before and after.
--
-- usage (from the project root): SPOTIFY_BUILD=build/<lua> <lua> bench/leak.lua [nginx]
local build = assert(os.getenv "SPOTIFY_BUILD", "SPOTIFY_BUILD is not set")
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local fake = require "spec.support.fake"
local ID = "4iV5W9uYEdYUVa79Axb7Rh"

local function rss_kib(pid)
  local f = io.open("/proc/" .. (pid or "self") .. "/status")
  local text = f and f:read "*a" or ""
  if f then f:close() end
  return tonumber(text:match "VmRSS:%s*(%d+)") or 0
end

local function full_gc()
  for _ = 1, 4 do collectgarbage "collect" end
end

local interpreter = rawget(_G, "jit") and "luajit" or _VERSION:gsub("Lua ", "lua")

local function plain(f)
  local spotify = require "spotify"
  local opts = { client_id = "test-id", client_secret = "test-secret", api_base = f.api_base,
    token_url = f.token_url }
  assert(spotify.client(opts):access_token()) -- warm-up: libcurl, its TLS and DNS state
  full_gc()
  local base = rss_kib()
  for _ = 1, 20000 do spotify.client(opts) end
  full_gc()
  local dropped = rss_kib()
  for _ = 1, 2000 do assert(spotify.client(opts):access_token()) end
  full_gc()
  local fetched = rss_kib()
  print(("%-8s 20000 dropped clients: %+.1f MB   then 2000 fetching a token: %+.1f MB   (RSS %.1f MB at start)")
    :format(interpreter, (dropped - base) / 1024, (fetched - base) / 1024, base / 1024))
end

local function in_nginx(f)
  local nginx = require "spec.support.nginx"
  nginx.check()
  local server = nginx.start {
    workers = 1,
    http = nginx.package_paths() .. "\n  lua_shared_dict tokens 1m;",
    server = ([[
    location = /per_request {
      content_by_lua_block {
        local spotify = require "spotify"
        local c = spotify.client { client_id = "test-id", client_secret = "test-secret",
          api_base = %q, token_url = %q, cache = spotify.cache.shdict(ngx.shared.tokens) }
        local t, err = c:track(%q)
        ngx.say(t and "ok" or tostring(err))
      }
    }]]):format(f.api_base, f.token_url, ID),
  }
  local worker = io.popen("pgrep -P " .. server.pid):read "*l"
  local function run(n)
    local paths = {}
    for i = 1, n do paths[i] = "/per_request" end
    local failed = 0
    for _, r in ipairs(server:parallel(paths, 4)) do
      if r.status ~= 200 or not r.body:find "^ok" then failed = failed + 1 end
    end
    return failed
  end
  run(500) -- warm-up
  local base = rss_kib(worker)
  local failed = run(5000)
  local after = rss_kib(worker)
  server:stop()
  print(("nginx    5000 requests, a client each: worker %+.1f MB (RSS %.1f MB after warm-up), %d failed")
    :format((after - base) / 1024, base / 1024, failed))
end

local f = fake.start {}
local ok, err = pcall(arg[1] == "nginx" and in_nginx or plain, f)
f:stop()
if not ok then error(err, 0) end
