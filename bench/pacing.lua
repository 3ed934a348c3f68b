--- What shared pacing costs per call: CPU (this process, os.clock) and
-- latency, without rate_limit and with it, on the memory cache, Redis and
-- (inside nginx) the shared dict. The budget is set far above the calls,
-- so nothing waits: the figures are the cache round trips alone.
--
-- usage (from the project root): SPOTIFY_BUILD=build/<lua> <lua> bench/pacing.lua [N]
local build = assert(os.getenv "SPOTIFY_BUILD", "SPOTIFY_BUILD is not set")
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local fake = require "spec.support.fake"
local nginx = require "spec.support.nginx"
local redis_server = require "spec.support.redis"
local spotify = require "spotify"
local now = require("spotify.core").now

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local N = tonumber(arg[1]) or 2000
local BUDGET = { requests = 1000000, window = 30 }

local function measure(client)
  assert(client:track(ID)) -- warm-up: token, connection
  local cpu, t0 = os.clock(), now()
  for _ = 1, N do assert(client:track(ID)) end
  return (os.clock() - cpu) / N * 1e6, (now() - t0) / N * 1e6
end

local ROUNDS = tonumber(os.getenv "BENCH_ROUNDS") or 3
local rows, order = {}, {}
local function row(name, cpu, latency)
  if not rows[name] then
    rows[name] = { cpu = {}, latency = {} }
    order[#order + 1] = name
  end
  table.insert(rows[name].cpu, cpu)
  table.insert(rows[name].latency, latency)
end

local function median(list)
  table.sort(list)
  return list[math.floor((#list + 1) / 2)]
end

local commands
local f = fake.start {}
local redis = redis_server.start()
local ok, err = pcall(function()
  local base = { client_id = "test-id", client_secret = "test-secret", api_base = f.api_base,
    token_url = f.token_url }
  local function with(extra)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(extra) do o[k] = v end
    return o
  end
  local function redis_cache() return spotify.cache.redis(redis:connect()) end
  -- Rounds interleave the rows, so a busy moment of the machine falls on all.
  for _ = 1, ROUNDS do
    row("memory, no rate_limit", measure(spotify.client(with {})))
    row("memory, rate_limit", measure(spotify.client(with { rate_limit = BUDGET })))
    row("redis, no rate_limit", measure(spotify.client(with { cache = redis_cache() })))
    row("redis, rate_limit", measure(spotify.client(with { cache = redis_cache(), rate_limit = BUDGET })))
  end

  -- Redis commands per paced call: the commands the client sent (counted
  -- on its connection: round trips) and INFO commandstats (what Redis ran,
  -- a script's own commands included).
  local sent = 0
  local conn = redis:connect()
  local counting = setmetatable({}, { __index = function(_, name)
    local v = conn[name]
    if type(v) ~= "function" then return v end
    return function(_, ...)
      sent = sent + 1
      return v(conn, ...)
    end
  end })
  local counted = spotify.client(with { cache = spotify.cache.redis(counting), rate_limit = BUDGET })
  assert(counted:track(ID)) -- the token, the script loaded
  local admin = redis:connect()
  admin:config("resetstat")
  sent = 0
  for _ = 1, N do assert(counted:track(ID)) end
  local p = assert(io.popen(("redis-cli -p %d info commandstats"):format(redis.port)))
  local stats, ran = {}, 0
  for name, n in p:read("*a"):gmatch "cmdstat_([%w|_]+):calls=(%d+)" do
    if name ~= "config|resetstat" then
      stats[#stats + 1] = ("%s %.2f"):format(name, tonumber(n) / N)
      ran = ran + tonumber(n)
    end
  end
  p:close()
  table.sort(stats)
  commands = ("Redis commands per paced call (%d calls): %.3f sent by the client; %.2f run by Redis (%s)")
    :format(N, sent / N, ran / N, table.concat(stats, ", "))

  nginx.check()
  local server = nginx.start {
    workers = 1,
    http = nginx.package_paths() .. "\n  lua_shared_dict tokens 1m;",
    server = ([[
    location = /run {
      content_by_lua_block {
        local spotify = require "spotify"
        local opts = { client_id = "test-id", client_secret = "test-secret", api_base = %q, token_url = %q,
          cache = spotify.cache.shdict(ngx.shared.tokens) }
        if ngx.var.arg_paced then opts.rate_limit = { requests = 1000000, window = 30 } end
        local c = spotify.client(opts)
        assert(c:track(%q))
        local cpu = os.clock -- the worker's CPU time (clock(3))
        local c0 = cpu()
        ngx.update_time()
        local t0 = ngx.now()
        for _ = 1, %d do assert(c:track(%q)) end
        ngx.update_time()
        ngx.say((cpu() - c0) / %d * 1e6, " ", (ngx.now() - t0) / %d * 1e6)
      }
    }]]):format(f.api_base, f.token_url, ID, N, ID, N, N),
  }
  for _ = 1, ROUNDS do
    for _, paced in ipairs { false, true } do
      local status, body = server:get(paced and "/run?paced=1" or "/run")
      assert(status == 200, body)
      local c, l = body:match "^(%S+) (%S+)"
      row("nginx shdict, " .. (paced and "rate_limit" or "no rate_limit"), tonumber(c), tonumber(l))
    end
  end
  server:stop()
end)
redis:stop()
f:stop()
if not ok then error(err, 0) end
print(("%-28s %8s %10s   (median of %d rounds of %d sequential track() calls, %s)"):format("cache",
  "CPU µs", "latency µs", ROUNDS, N, rawget(_G, "jit") and "luajit" or _VERSION))
for _, name in ipairs(order) do
  print(("%-28s %8.1f %10.1f"):format(name, median(rows[name].cpu), median(rows[name].latency)))
end
print(commands)
