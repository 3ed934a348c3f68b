--- Non-blocking use between frames, as in a game loop (LÖVE, Defold, a
-- terminal UI...): start requests, then give the client a moment each frame.
--
--   SPOTIFY_CLIENT_ID=... SPOTIFY_CLIENT_SECRET=... lua examples/game_loop.lua
--
-- SPOTIFY_API_BASE and SPOTIFY_TOKEN_URL, when set, point every client at
-- another server (`make demo` and `make fake` use them for the bundled fake).
local spotify = require "spotify"

local FRAME = 1 / 60 -- seconds one frame may spend waiting on the network

local client = spotify.client()

-- Each started request returns at once; the token fetch, retries and
-- backoff all happen inside it while the loop keeps running.
local pending = {
  { label = "track", req = client:start("track", "4iV5W9uYEdYUVa79Axb7Rh") },
  { label = "album", req = client:start("album", "4EcfbzCtbJDk2wMwhT4D1h") },
  { label = "artist", req = client:start("artist", "0TnOYISbd1XYRBk9myaseg") },
  { label = "search", req = client:start("search", "Muse", { limit = 3 }) },
}

--- What to show for a finished request.
local function describe(label, value)
  if label == "search" then
    local names = {}
    for i, t in ipairs(value.tracks.items) do names[i] = t.name end
    return "search: " .. table.concat(names, " / ")
  end
  return label .. ": " .. value.name
end

local frame = 0
while #pending > 0 and frame < 60 * 30 do
  frame = frame + 1
  -- update(dt) and draw() of the game would run here.
  client:poll(FRAME) -- advances every transfer; waits at most one frame
  for i = #pending, 1, -1 do
    local p = pending[i]
    if p.req:done() then
      local value, err = p.req:result()
      print(("frame %3d  %s"):format(frame, value and describe(p.label, value) or tostring(err)))
      table.remove(pending, i)
    end
  end
end

if #pending > 0 then
  for _, p in ipairs(pending) do p.req:cancel() end
  print("gave up waiting after " .. frame .. " frames")
else
  print(("all answers arrived within %d frames; no frame waited longer than %.3f s"):format(frame, FRAME))
end
client:close()
