--- Look up a track, an album with all its tracks, and run a search.
--
--   SPOTIFY_CLIENT_ID=... SPOTIFY_CLIENT_SECRET=... lua examples/catalog.lua
--
-- SPOTIFY_API_BASE and SPOTIFY_TOKEN_URL, when set, point every client at
-- another server (`make demo` and `make fake` use them for the bundled fake).
local spotify = require "spotify"

local TRACK = "spotify:track:4iV5W9uYEdYUVa79Axb7Rh"
local ALBUM = "https://open.spotify.com/album/4EcfbzCtbJDk2wMwhT4D1h"

local client = spotify.client {
  market = "SE",
}

local function artists(list)
  local out = {}
  for i, a in ipairs(list or {}) do out[i] = a.name end
  return table.concat(out, ", ")
end

local function minutes(ms)
  local s = math.floor(ms / 1000 + 0.5)
  return ("%d:%02d"):format(math.floor(s / 60), s % 60)
end

local track = assert(client:track(TRACK))
print(("Track:  %s by %s (%s), on %s"):format(track.name, artists(track.artists),
  minutes(track.duration_ms), track.album.name))

local album = assert(client:album(ALBUM))
print(("Album:  %s by %s, released %s"):format(album.name, artists(album.artists), album.release_date))
-- album.tracks is the first page; items() follows `next` to the last one.
for t in client:items(album.tracks) do
  print(("  %2d. %-40s %s"):format(t.track_number, t.name, minutes(t.duration_ms)))
end

local found = assert(client:search("Muse", { type = { "track", "artist" }, limit = 5 }))
print(("Search: \"Muse\" matches %d tracks and %d artists; the first few tracks:"):format(
  found.tracks.total, found.artists.total))
for _, t in ipairs(found.tracks.items) do
  print(("  %-30s %s"):format(t.name, artists(t.artists)))
end

local stats = client:stats()
print(("%d HTTP requests (the token's included), %d connection(s) opened"):format(
  stats.requests, stats.connections_opened))
client:close()
