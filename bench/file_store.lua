--- The file cache as a response store: N distinct lookups (client:track)
-- through one client with spotify.responses{store = spotify.cache.file(p),
-- ttl = 3600}, against the same lookups with no store at all (what the
-- fake Spotify and the client cost alone); then the same N from a second
-- client, answered by the store. Each row is the best of `runs`, each run
-- in a fresh directory. Prints the times, the requests the fake saw and
-- the files the cache left.
--
-- usage (from the project root):
--   SPOTIFY_BUILD=build/luajit luajit bench/file_store.lua [N=400] [runs=3] [dir=/tmp]
local build = assert(os.getenv "SPOTIFY_BUILD", "SPOTIFY_BUILD is not set")
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local spotify = require "spotify"
local core = require "spotify.core"
local testing = core.testing()
local fake = require "spec.support.fake"
local files = require "spec.support.files"

local n, runs, base = tonumber(arg[1] or 400), tonumber(arg[2] or 3), arg[3] or "/tmp"
local f = fake.start {}
local serial = 0

-- One pass of n lookups; seconds, requests to /v1/tracks/.
local function pass(opts, ids)
  local c = spotify.client(fake.client_opts(f, opts))
  assert(c:access_token()) -- the token is not part of the figure
  local mark = #f:log()
  local t0 = testing.time()
  for _, id in ipairs(ids) do assert(c:track(id)) end
  local dt = testing.time() - t0
  c:close()
  return dt, #f:log_for("/v1/tracks/", mark)
end

local best = {}
local function keep(row, dt, asked, extra)
  if not best[row] or dt < best[row].dt then best[row] = { dt = dt, asked = asked, extra = extra } end
end

local ok, err = pcall(function()
  for _ = 1, runs do
    serial = serial + 1
    local ids = fake.ids(n, string.char(64 + serial)) -- A, B, ...: new IDs each run
    keep("none", pass({ responses = spotify.responses { ttl = 3600, lru = 0 } }, ids))
    local dir = files.read_command(("mktemp -d '%s/file-store.XXXXXX'"):format(base))
    local path = dir .. "/tokens.json"
    local function file_opts()
      return { cache = spotify.cache.file(path),
        responses = spotify.responses { store = spotify.cache.file(path), ttl = 3600, lru = 0 } }
    end
    local dt, asked = pass(file_opts(), ids)
    local left = files.read_command(("find '%s' -mindepth 1 -not -path '%s.d/*' | wc -l"):format(dir, path))
    keep("file", dt, asked, ("%s entries, %s other files"):format(
      files.read_command(("ls '%s.d' | wc -l"):format(path)), left))
    keep("hits", pass(file_opts(), ids))
    os.execute("rm -rf '" .. dir .. "'")
  end
end)
f:stop()
assert(ok, err)

local rows = {
  { "none", ("%d distinct lookups, no store"):format(n) },
  { "file", ("%d distinct lookups, file store (empty)"):format(n) },
  { "hits", ("the same %d, a second client (store hits)"):format(n) },
}
print(("best of %d runs, %s"):format(runs, base))
for _, r in ipairs(rows) do
  local b = best[r[1]]
  print(("%-44s %7.3f s  %6.3f ms/lookup  requests %4d  %s"):format(r[2], b.dt, b.dt * 1000 / n,
    b.asked, b.extra or ""))
end
