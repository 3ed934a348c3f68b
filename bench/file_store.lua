--- The file cache as a response store: N distinct lookups through one
-- client with spotify.responses{store = spotify.cache.file(p), ttl = 3600},
-- then the same N again (answered from the store by a second client, as a
-- second process would be). Prints the wall time of each pass, the files
-- the cache left beside its file, and the requests the fake Spotify saw.
--
-- usage (from the project root): SPOTIFY_BUILD=build/luajit luajit bench/file_store.lua [N]
local build = assert(os.getenv "SPOTIFY_BUILD", "SPOTIFY_BUILD is not set")
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local spotify = require "spotify"
local core = require "spotify.core"
local testing = core.testing()
local fake = require "spec.support.fake"
local files = require "spec.support.files"

local n = tonumber(arg[1] or 400)
local f = fake.start {}
local dir = files.read_command "mktemp -d"
local ok, err = pcall(function()
  local path = dir .. "/tokens.json"
  local ids = fake.ids(n, "F")
  local function pass(label)
    local c = spotify.client(fake.client_opts(f, {
      cache = spotify.cache.file(path),
      responses = spotify.responses { store = spotify.cache.file(path), ttl = 3600, lru = 0 },
    }))
    assert(c:access_token()) -- the token is not part of the figure
    local mark = #f:log()
    local t0 = testing.time()
    for _, id in ipairs(ids) do assert(c:track(id)) end
    local dt = testing.time() - t0
    local asked = 0
    for i = mark + 1, #f:log() do
      if f:log()[i].path:find("/v1/tracks/", 1, true) then asked = asked + 1 end
    end
    local names = files.read_command(("find '%s' -mindepth 1 | wc -l"):format(dir))
    print(("%-44s %8.3f s  %6.2f ms/lookup  requests %4d  files %s"):format(label, dt,
      dt * 1000 / n, asked, names))
    c:close()
  end
  pass(("%d distinct lookups, an empty store"):format(n))
  pass(("the same %d, a second client (store hits)"):format(n))
end)
f:stop()
os.execute("rm -rf '" .. dir .. "'")
assert(ok, err)
