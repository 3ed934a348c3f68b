--- `make bench-quota`: how much of Spotify's quota the response cache,
-- coalescing and batch_window save, counted from the fake Spotify's request
-- log (spec/support/fake_spotify.py), and what a process-tier hit costs in
-- instructions (callgrind) against an uncached client:track. Prints the
-- figures and writes them into bench/RESULTS.md ("Spending less quota").
--
-- usage (from the project root): SPOTIFY_BUILD=build/luajit luajit bench/quota.lua
--   ... bench/quota.lua ir <track|hit> N API_BASE TOKEN_URL   (one callgrind run; internal)
local build = assert(os.getenv "SPOTIFY_BUILD", "SPOTIFY_BUILD is not set")
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local spotify = require "spotify"
local core = require "spotify.core"
local testing = core.testing()
local ID = "4iV5W9uYEdYUVa79Axb7Rh"

-- One run for callgrind: N calls of client:track, uncached or process-tier hits.
if arg[1] == "ir" then
  local mode, n = arg[2], tonumber(arg[3])
  local c = spotify.client { client_id = "test-id", client_secret = "test-secret", api_base = arg[4],
    token_url = arg[5], responses = mode == "hit" and spotify.responses { ttl = 3600 } or nil }
  assert(c:track(ID))
  for _ = 1, n do assert(c:track(ID)) end
  return
end

local cjson = require "cjson"
local fake = require "spec.support.fake"
local files = require "spec.support.files"
local fleet = require "spec.support.fleet"
local nginx = require "spec.support.nginx"
local redis_server = require "spec.support.redis"

local function ids(n, prefix) return fake.ids(n, prefix or "Q") end

local opts = fake.client_opts

local function run_all(c, reqs)
  while c:poll(0.01) > 0 do end
  for _, r in ipairs(reqs) do assert(r:result()) end
end

local figures = {}
local function figure(name, value, target)
  figures[#figures + 1] = { name = name, value = value, target = target }
  print(("%-64s %8s   %s"):format(name, tostring(value), target))
end

-- Requests to `prefix` since the log held `mark` entries (f:reset would
-- also forget the tokens it issued); `kind`: "single", "batch" or any.
local function asked(f, mark, prefix, kind)
  local log, n = f:log(), 0
  for i = mark + 1, #log do
    local e = log[i]
    local batch = e.query:find("ids=", 1, true) ~= nil
    if e.path:sub(1, #prefix) == prefix and (kind == nil or (kind == "batch") == batch) then n = n + 1 end
  end
  return n
end

-- IDs asked by the requests to `prefix` since the log held `mark` entries
-- (a single lookup asks one).
local function ids_asked(f, mark, prefix)
  local n = 0
  for _, e in ipairs(f:log_for(prefix, mark)) do
    local v = e.query:match "ids=([^&]*)"
    n = n + (v and select(2, v:gsub("[^,]+", "")) or 1)
  end
  return n
end

local f = fake.start {}
local redis = redis_server.start()
local ok, err = pcall(function()
  -- 1. One process: 2,000 calls over 200 IDs.
  f:reset()
  local c = spotify.client(opts(f, { responses = spotify.responses { ttl = 3600 } }))
  local list = ids(200)
  for i = 1, 2000 do assert(c:track(list[(i - 1) % 200 + 1])) end
  figure("2,000 calls over 200 IDs, one process: requests", #f:log_for "/v1/tracks/", "at most 200")
  c:close()

  -- 2. 4 processes sharing Redis, 300 calls each over the same 100 IDs.
  f:reset()
  local lua, fbuild = fleet.runtime()
  local start_at, dir, cmd = testing.time() + 1.5, fake.workdir(), {}
  for i = 1, 4 do
    cmd[#cmd + 1] = ("%s spec/support/responses_worker.lua build=%s api_base=%s token_url=%s port=%d "
      .. "calls=300 ids=100 start_at=%.3f > %s/quota%d.out 2>&1 &"):format(lua, fbuild, f.api_base,
      f.token_url, redis.port, start_at, dir, i)
  end
  local proc = assert(io.popen(table.concat(cmd, " ") .. " wait"))
  proc:read "*a"
  proc:close()
  for i = 1, 4 do
    local summary = cjson.decode(files.read_file(("%s/quota%d.out"):format(dir, i)))
    assert(summary.ok == 300, summary.first_error)
  end
  figure("4 processes sharing Redis, 300 calls each over 100 IDs: requests", #f:log_for "/v1/tracks/",
    "at most 100")

  -- 3. 16 identical started requests.
  c = spotify.client(opts(f))
  assert(c:access_token())
  local mark = #f:log()
  local reqs = {}
  for i = 1, 16 do reqs[i] = c:start("track", ID) end
  run_all(c, reqs)
  figure("16 identical started requests: requests", asked(f, mark, "/v1/tracks/"), "1")
  c:close()

  -- 4. 50 started lookups with batch_window.
  c = spotify.client(opts(f, { batch_window = 0.005 }))
  assert(c:access_token())
  mark = #f:log()
  reqs, list = {}, ids(50, "S")
  for i = 1, 50 do reqs[i] = c:start("track", list[i]) end
  run_all(c, reqs)
  figure("50 started lookups, batch_window = 0.005: batch requests", asked(f, mark, "/v1/tracks", "batch"), "1")
  figure("50 started lookups, batch_window = 0.005: single requests", asked(f, mark, "/v1/tracks", "single"), "0")
  c:close()

  -- Batch answers kept per item: a plural call then single lookups, and a
  -- plural call of which some IDs are held.
  c = spotify.client(opts(f, { responses = spotify.responses { ttl = 3600 } }))
  assert(c:access_token())
  mark = #f:log()
  list = ids(50, "C")
  assert(c:tracks(list))
  for i = 1, 50 do assert(c:track(list[i])) end
  figure("responses: tracks(50 IDs) then track() for each: requests", asked(f, mark, "/v1/tracks"), "1")
  c:close()
  c = spotify.client(opts(f, { responses = spotify.responses { ttl = 3600 } }))
  list = ids(50, "D")
  for i = 1, 30 do assert(c:track(list[i])) end
  mark = #f:log()
  assert(c:tracks(list))
  figure("responses: 30 of 50 IDs held, then tracks(50 IDs): requests", asked(f, mark, "/v1/tracks"), "1")
  figure("responses: 30 of 50 IDs held, then tracks(50 IDs): IDs asked", ids_asked(f, mark, "/v1/tracks"), "20")
  c:close()

  -- Conditional requests: an expired answer with an ETag (ttl 1 s, asked again after 1.2 s).
  c = spotify.client(opts(f, { responses = spotify.responses { ttl = 1 } }))
  assert(c:track(ID))
  core.sleep(1.2)
  mark = #f:log()
  assert(c:track(ID))
  local answered = f:log_for("/v1/tracks/", mark)
  figure("responses: an expired answer with an ETag: requests", #answered, "1")
  figure("responses: an expired answer with an ETag: answered 304", answered[1] and answered[1].status or 0, "304")
  figure("responses: an expired answer with an ETag: response_revalidated", c:stats().response_revalidated, "1")
  c:close()

  -- 5 and 6. Inside nginx, 2 workers, a shared dict store.
  nginx.check()
  local server = nginx.start {
    workers = 2,
    http = nginx.package_paths() .. "\n  lua_shared_dict tokens 1m;\n  lua_shared_dict responses 16m;"
      .. "\n  lua_socket_log_errors off;\n  init_by_lua_block { require 'spotify' }",
    server = ([[
    location = /track {
      content_by_lua_block {
        local spotify = require "spotify"
        local key = ngx.var.arg_both and "both" or ngx.var.arg_window and "window" or "cached"
        local c = package.loaded["quota." .. key]
        if not c then
          local o = { client_id = "test-id", client_secret = "test-secret", api_base = %q, token_url = %q,
            cache = spotify.cache.shdict(ngx.shared.tokens) }
          if key ~= "cached" then o.batch_window = 0.005 end
          if key ~= "window" then
            o.responses = spotify.responses { store = spotify.cache.shdict(ngx.shared.responses), ttl = 3600 }
          end
          c = spotify.client(o)
          package.loaded["quota." .. key] = c
        end
        local t, err = c:track(ngx.var.arg_id)
        ngx.say(t and t.id or tostring(err))
      }
    }]]):format(f.api_base, f.token_url),
  }
  for _ = 1, 8 do -- both workers' clients get their token
    server:get("/track?id=" .. ID)
    server:get("/track?window=1&id=" .. ID)
  end
  mark = #f:log()
  list = ids(20, "N")
  local paths = {}
  for i = 1, 400 do paths[i] = "/track?id=" .. list[(i - 1) % 20 + 1] end
  local results = server:parallel(paths, 100)
  for i = 1, 400 do assert(results[i].status == 200 and results[i].body:find(list[(i - 1) % 20 + 1], 1, true)) end
  figure("nginx, 2 workers, shdict store: 400 requests over 20 IDs: requests", asked(f, mark, "/v1/tracks/"),
    "at most 20")
  mark = #f:log()
  list, paths = ids(50, "W"), {}
  for i = 1, 50 do paths[i] = "/track?window=1&id=" .. list[i] end
  results = server:parallel(paths, 50)
  for i = 1, 50 do assert(results[i].status == 200 and results[i].body:find(list[i], 1, true)) end
  figure("nginx, 2 workers: 50 concurrent lookups, batch_window = 0.005: requests", asked(f, mark, "/v1/tracks"),
    "at most 3")
  for _ = 1, 8 do server:get("/track?both=1&id=" .. ID) end
  mark = #f:log()
  list, paths = ids(50, "B"), {}
  for i = 1, 2000 do paths[i] = "/track?both=1&id=" .. list[(i - 1) % 50 + 1] end
  results = server:parallel(paths, 40)
  for i = 1, 2000 do
    assert(results[i].status == 200 and results[i].body:find(list[(i - 1) % 50 + 1], 1, true), results[i].body)
  end
  figure("nginx, 2 workers, shdict store, responses + batch_window: 2,000 requests over 50 IDs, 40 at a time: "
    .. "requests", asked(f, mark, "/v1/tracks"), "at most 50")
  figure("nginx, 2 workers, shdict store, responses + batch_window: the same: IDs asked",
    ids_asked(f, mark, "/v1/tracks"), "at most 100")
  server:stop()

  -- 7. Instructions: a process-tier hit against an uncached client:track (LuaJIT).
  if os.getenv "BENCH_IR" ~= "0" and os.execute "valgrind --version >/dev/null 2>&1" then
    local function ir(mode, n)
      local p = assert(io.popen(("valgrind --tool=callgrind --callgrind-out-file=/dev/null luajit bench/quota.lua "
        .. "ir %s %d %s %s 2>&1"):format(mode, n, f.api_base, f.token_url)))
      local out = p:read "*a"
      p:close()
      return assert(tonumber(out:match "Collected : (%d+)"), out)
    end
    local per = {}
    -- long runs: the difference of 50 and 250 calls varied by thousands of Ir per call
    for _, mode in ipairs { "track", "hit" } do per[mode] = (ir(mode, 450) - ir(mode, 50)) / 400 end
    figure("Ir per uncached client:track (LuaJIT, callgrind)", math.floor(per.track + 0.5), "")
    figure("Ir per process-tier hit (LuaJIT, callgrind)", math.floor(per.hit + 0.5),
      ("at most a tenth: %.3f"):format(per.hit / per.track))
  end
end)
redis:stop()
f:stop()
if not ok then error(err, 0) end

-- Into bench/RESULTS.md: one section, replaced on every run.
local path = "bench/RESULTS.md"
local text = files.read_file(path) or ""
local lines = {
  "## Spending less quota (`make bench-quota`)", "",
  ("Run %s UTC on the fake Spotify (spec/support/fake_spotify.py); request counts from its"):format(
    os.date "!%Y-%m-%d %H:%M"),
  "log. Command: `make bench-quota` (bench/quota.lua; `BENCH_IR=0` skips callgrind).", "",
  "| figure | value | target |", "|---|---|---|",
}
for _, fg in ipairs(figures) do lines[#lines + 1] = ("| %s | %s | %s |"):format(fg.name, fg.value, fg.target) end
local section = table.concat(lines, "\n") .. "\n"
local s, e = text:find("## Spending less quota.-\n(## )")
if s then
  text = text:sub(1, s - 1) .. section .. "\n" .. text:sub(e - 2)
elseif text:find("## Spending less quota", 1, true) then
  text = text:sub(1, text:find("## Spending less quota", 1, true) - 1) .. section
else
  text = text .. "\n" .. section
end
files.write_file(path, text)
print("written to " .. path)
