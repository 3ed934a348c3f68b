--- Bytes received per request, plain and gzipped, in each driver: the
-- body bytes the fake sent (its log: what crossed the wire) and
-- stats().bytes_received (the inflated body the client decoded), for a
-- track and a search of 10 tracks and 10 artists (the fixtures).
--
-- usage (from the project root): SPOTIFY_BUILD=build/luajit luajit bench/bytes.lua
-- (`make bench-bytes`; the nginx rows need nginx with its lua module)
local build = assert(os.getenv "SPOTIFY_BUILD", "SPOTIFY_BUILD is not set")
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local cjson = require "cjson"
local fake = require "spec.support.fake"

local unpack = table.unpack or unpack -- luacheck: ignore 113 143
local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local N = 20
local CALLS = {
  track = { "track", { ID } },
  search = { "search", { "roadhouse blues", { type = { "track", "artist" }, limit = 10 } } },
}

-- Body bytes the fake sent for `prefix` after the first `mark` log entries.
local function sent_since(f, mark, prefix)
  local log, total = f:log_for(prefix, mark), 0
  for _, e in ipairs(log) do total = total + e.sent end
  return total, #log
end

local PREFIX = { track = "/v1/tracks/", search = "/v1/search" }

local function row(driver, name, gzip, wire, n, decoded)
  print(("%-8s %-7s %-5s %9.0f bytes on the wire   %9.0f bytes_received   per request (%d requests)")
    :format(driver, name, gzip and "gzip" or "plain", wire / n, decoded / n, n))
end

local function libcurl(f)
  local spotify = require "spotify"
  for _, gzip in ipairs { false, true } do
    f:config { gzip = gzip }
    for _, name in ipairs { "track", "search" } do
      local c = spotify.client(fake.client_opts(f))
      assert(c:access_token())
      local before, mark = c:stats().bytes_received, #f:log()
      local method, args = CALLS[name][1], CALLS[name][2]
      for _ = 1, N do assert(c[method](c, unpack(args))) end
      local wire, n = sent_since(f, mark, PREFIX[name])
      assert(n == N, "expected " .. N .. " requests at the fake, saw " .. n)
      row("libcurl", name, gzip, wire, n, c:stats().bytes_received - before)
      c:close()
    end
  end
end

local function in_nginx(f)
  local nginx = require "spec.support.nginx"
  nginx.check()
  local server = nginx.start {
    workers = 1,
    http = nginx.package_paths(),
    server = ([=[
    location = /calls {
      content_by_lua_block {
        local cjson = require "cjson"
        local spotify = require "spotify"
        local a = ngx.req.get_uri_args()
        local call = cjson.decode(a.call)
        local c = spotify.client { client_id = "test-id", client_secret = "test-secret",
          api_base = %q, token_url = %q }
        assert(c:access_token())
        local before = c:stats().bytes_received
        for _ = 1, tonumber(a.n) do assert(c[call[1]](c, unpack(call[2]))) end
        ngx.say(c:stats().bytes_received - before)
        c:close()
      }
    }]=]):format(f.api_base, f.token_url),
  }
  local ok, err = pcall(function()
    for _, gzip in ipairs { false, true } do
      f:config { gzip = gzip }
      for _, name in ipairs { "track", "search" } do
        local mark = #f:log()
        local call = cjson.encode(CALLS[name]):gsub("[^%w]", function(ch) return ("%%%02X"):format(ch:byte()) end)
        local status, body = server:get("/calls?n=" .. N .. "&call=" .. call)
        assert(status == 200, "nginx answered " .. tostring(status) .. ": " .. tostring(body))
        local wire, n = sent_since(f, mark, PREFIX[name])
        assert(n == N, "expected " .. N .. " requests at the fake, saw " .. n)
        row("nginx", name, gzip, wire, n, tonumber(body))
      end
    end
  end)
  server:stop()
  if not ok then error(err, 0) end
end

local f = fake.start {}
local ok, err = pcall(function()
  libcurl(f)
  in_nginx(f)
end)
f:stop()
if not ok then error(err, 0) end
