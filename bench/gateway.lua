--- Requests per second through the gateway (examples/gateway as shipped)
-- against nginx's own proxy_pass + proxy_cache serving the same answers
-- from the same fake Spotify on the same machine, both with 2 workers, by
-- wrk: cache hits (one track asked again and again: the ratio is the
-- target, >= 0.5), and misses (a new track each request, so every request
-- reaches the fake). Prints a Markdown table; never fails on a number.
--
-- usage (from the project root): SPOTIFY_BUILD=build/luajit luajit bench/gateway.lua
--   BENCH_SECONDS (5), BENCH_CONNECTIONS (32), BENCH_ROUNDS (3): wrk's duration,
--   connections and how many runs each figure is the median of; BENCH_HITS_ONLY=1
local build = assert(os.getenv "SPOTIFY_BUILD", "SPOTIFY_BUILD is not set")
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local fake = require "spec.support.fake"
local files = require "spec.support.files"
local gateway = require "spec.support.gateway"
local nginx = require "spec.support.nginx"
local spotify = require "spotify"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local SECONDS = tonumber(os.getenv "BENCH_SECONDS") or 5
local CONNECTIONS = tonumber(os.getenv "BENCH_CONNECTIONS") or 32
local ROUNDS = tonumber(os.getenv "BENCH_ROUNDS") or 3

assert(files.run "command -v wrk > /dev/null", "wrk is not installed (make bench-gateway installs it)")

local f = fake.start {}
-- BENCH_WINDOW: the gateway's batch_window (SPOTIFY_BATCH_WINDOW; default the example's)
local node = gateway.start(f, { workers = 2, env = { SPOTIFY_BATCH_WINDOW = os.getenv "BENCH_WINDOW" } })

-- nginx's own cache in front of the same fake, with a token of the app
local token = assert(spotify.client(fake.client_opts(f)):access_token())
local port = f.api_base:match ":(%d+)/"
local proxy = nginx.start {
  workers = 2,
  http = ([[
  proxy_cache_path ${PREFIX}/cache levels=1:2 keys_zone=spotify:10m max_size=256m inactive=1d use_temp_path=off;
  upstream spotify { server 127.0.0.1:%s; keepalive 32; }]]):format(port),
  server = ([[
    location /v1/ {
      proxy_pass http://spotify;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer %s";
      proxy_cache spotify;
      proxy_cache_valid 200 1d;
      proxy_cache_lock on;
      proxy_cache_use_stale error timeout updating;
      proxy_ignore_headers Cache-Control Expires;
    }]]):format(token),
}

local MISS_SCRIPT = fake.workdir() .. "/gateway_miss.lua"
files.write_file(MISS_SCRIPT, [[
local n = 0
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
request = function()
  n = n + 1
  return wrk.format("GET", ("/v1/tracks/M%09d%012d"):format(math.random(0, 999999999), n))
end
]])

local function wrk(url, script)
  local cmd = ("wrk -t2 -c%d -d%ds %s %s 2>&1"):format(CONNECTIONS, SECONDS, script and ("-s " .. script) or "", url)
  local out = files.read_command(cmd)
  local rps = tonumber(out:match "Requests/sec:%s*([%d%.]+)")
  local non2xx = tonumber(out:match "Non%-2xx or 3xx responses:%s*(%d+)") or 0
  assert(rps, out)
  return rps, non2xx
end

local function median(list)
  table.sort(list)
  return list[math.ceil(#list / 2)]
end

local function measure(base, script)
  local runs, bad = {}, 0
  for r = 1, ROUNDS do
    local rps, non2xx = wrk(base .. (script and "" or ("/v1/tracks/" .. ID)), script)
    runs[r], bad = rps, bad + non2xx
  end
  return median(runs), bad
end

-- both warm: the answer kept (and the gateway's token held)
for _, base in ipairs { node.base:gsub("/v1$", ""), proxy.base } do
  local status = select(1, require("socket.http").request(base .. "/v1/tracks/" .. ID))
  assert(status, "warm-up failed for " .. base)
end

local gw_base = node.base:gsub("/v1$", "")
local rows = {}
local gh, gh_bad = measure(gw_base)
local ph, ph_bad = measure(proxy.base)
rows[#rows + 1] = { "hits (one track)", gh, ph, gh_bad + ph_bad }
if os.getenv "BENCH_HITS_ONLY" ~= "1" then
  local gm, gm_bad = measure(gw_base, MISS_SCRIPT)
  local pm, pm_bad = measure(proxy.base, MISS_SCRIPT)
  rows[#rows + 1] = { "misses (a new track each)", gm, pm, gm_bad + pm_bad }
end

node:stop()
proxy:stop()
f:stop()

print(("wrk -t2 -c%d -d%ds, median of %d runs; nginx 2 workers each; the fake Spotify as origin")
  :format(CONNECTIONS, SECONDS, ROUNDS))
print ""
print "| requests | gateway req/s | proxy_pass + proxy_cache req/s | gateway / proxy_cache | non-2xx |"
print "|---|---:|---:|---:|---:|"
for _, r in ipairs(rows) do
  print(("| %s | %.0f | %.0f | %.2f | %d |"):format(r[1], r[2], r[3], r[2] / r[3], r[4]))
end
