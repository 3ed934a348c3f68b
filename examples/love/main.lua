--- A LÖVE 11 window that searches the Spotify catalog and lists the results
-- while it keeps drawing: the search runs as a started request
-- (`client:start`), and `love.update` gives it a moment each frame with
-- `client:poll()`, which never blocks. Nothing in a frame waits on the network.
--
--   make gateway                      (in another shell: the gateway on 127.0.0.1:8080)
--   love examples/love
--
-- The game talks to a gateway (spotify.gateway, examples/gateway), never to
-- Spotify: a client secret inside a game ships in every copy, where anyone
-- can read it (and Spotify's terms forbid exposing it), and every copy
-- would spend the app's quota on its own. The gateway holds the secret and
-- the token, and answers every copy from one cache under one rate limit.
-- A tool that only the developer runs may still talk to Spotify directly:
--
--   SPOTIFY_LOVE_DIRECT=1 SPOTIFY_CLIENT_ID=... SPOTIFY_CLIENT_SECRET=... love examples/love
--
-- Type a query and press Enter. With the module from this tree instead of an
-- installed rock:
--
--   LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build/luajit/?.so;;" love examples/love
--
-- Environment:
--   SPOTIFY_GATEWAY                      the gateway (default http://127.0.0.1:8080/v1)
--   SPOTIFY_GATEWAY_KEY                  the game's X-Api-Key, if the gateway wants one
--   SPOTIFY_LOVE_DIRECT=1                no gateway: the credentials, SPOTIFY_API_BASE and
--                                        SPOTIFY_TOKEN_URL from the environment
--   SPOTIFY_LOVE_QUERY                   the first search (default "Muse")
--   SPOTIFY_LOVE_REPORT=DIR              write DIR/frames.txt (one line per frame) and,
--                                        once results (or an error) are shown, DIR/screenshot.png;
--                                        then quit
-- A shipped game: lua-spotify's Lua files may sit inside the game, even in
-- its .love archive (LÖVE's require reads those), but a C module cannot be
-- loaded from inside an archive. So the C core is looked for as a real
-- file: in the game's folder when it is unpacked, else beside the .love
-- file or the fused executable (see README.md here).
package.cpath = love.filesystem.getSource() .. "/?.so;" .. love.filesystem.getSourceBaseDirectory() .. "/?.so;"
  .. package.cpath
local spotify = require "spotify"

local REPORT = os.getenv "SPOTIFY_LOVE_REPORT"
local ROWS = 12

local client
local query = os.getenv "SPOTIFY_LOVE_QUERY" or "Muse"
local typed = query
local search = { started = nil, req = nil, results = nil, err = nil, took = nil }
local frames = {}       -- per frame: {t, dt, update_s, state}
local started_at
local screenshot = "none" -- none -> asked -> saved
local report_file

local function start_search(q)
  if search.req and not search.req:done() then search.req:cancel() end
  query = q
  search = { started = love.timer.getTime(), results = nil, err = nil }
  -- Returns at once: the token fetch and the search run inside the request.
  search.req = client:start("search", q, { type = "track", limit = 10 })
end

-- The game's client: a gateway's, which holds no secret; a direct one only
-- when asked for (a developer's own tool).
local function make_client()
  if os.getenv "SPOTIFY_LOVE_DIRECT" == "1" then
    return spotify.client() -- credentials, SPOTIFY_API_BASE and SPOTIFY_TOKEN_URL from the environment
  end
  local key = os.getenv "SPOTIFY_GATEWAY_KEY"
  return spotify.client {
    gateway = os.getenv "SPOTIFY_GATEWAY" or "http://127.0.0.1:8080/v1",
    gateway_key = key ~= "" and key or nil,
  }
end

function love.load()
  client = make_client()
  love.keyboard.setKeyRepeat(true)
  started_at = love.timer.getTime()
  if REPORT then report_file = assert(io.open(REPORT .. "/frames.txt", "w")) end
  start_search(query)
end

local function duration(ms)
  local s = math.floor((ms or 0) / 1000 + 0.5)
  return ("%d:%02d"):format(math.floor(s / 60), s % 60)
end

--- The result lines the window shows (also written to the report).
local function result_lines()
  local out = {}
  for i, t in ipairs(search.results or {}) do
    if i > ROWS then break end
    local artists = {}
    for _, a in ipairs(t.artists or {}) do artists[#artists + 1] = a.name end
    out[i] = ("%2d. %s - %s (%s)"):format(i, t.name or "?", table.concat(artists, ", "), duration(t.duration_ms))
  end
  return out
end

function love.update(dt)
  local t0 = love.timer.getTime()
  client:poll() -- advances every transfer; returns at once
  if search.req and search.req:done() and not search.results and not search.err then
    local res, err = search.req:result()
    search.took = love.timer.getTime() - search.started
    if res then
      search.results = res.tracks and res.tracks.items or {}
    else
      search.err = tostring(err)
    end
  end
  local state = search.results and "results" or (search.err and "error" or "waiting")
  frames[#frames + 1] = { t = t0 - started_at, dt = dt, update_s = love.timer.getTime() - t0, state = state }
  if report_file then
    local f = frames[#frames]
    report_file:write(("frame %d t=%.4f dt=%.4f update=%.5f %s\n"):format(#frames, f.t, f.dt, f.update_s, f.state))
    if state ~= "waiting" and screenshot == "saved" then
      for _, line in ipairs(result_lines()) do report_file:write("shown ", line, "\n") end
      if search.err then report_file:write("error ", search.err, "\n") end
      report_file:write(("done frames=%d took=%.4f\n"):format(#frames, search.took or -1))
      report_file:close()
      report_file = nil
      love.event.quit()
    end
  end
end

function love.draw()
  local g = love.graphics
  local w = g.getWidth()
  g.clear(0.09, 0.09, 0.11)
  -- A bar that moves every frame: the window keeps drawing while it waits.
  local x = (love.timer.getTime() * 200) % (w + 80) - 80
  g.setColor(0.12, 0.84, 0.38)
  g.rectangle("fill", x, 0, 80, 4)
  g.setColor(1, 1, 1)
  g.print("Search the Spotify catalog (type, then Enter):", 16, 16)
  g.setColor(0.2, 0.2, 0.25)
  g.rectangle("fill", 16, 36, w - 32, 24)
  g.setColor(1, 1, 1)
  g.print(typed .. ((math.floor(love.timer.getTime() * 2) % 2 == 0) and "_" or ""), 22, 41)
  local status
  if search.err then
    status = "error: " .. search.err
  elseif search.results then
    status = ("%d tracks for \"%s\" in %.2f s"):format(#search.results, query, search.took or 0)
  else
    status = ("searching \"%s\"... %.1f s"):format(query, love.timer.getTime() - search.started)
  end
  g.setColor(0.7, 0.7, 0.75)
  g.print(status, 16, 72)
  g.setColor(1, 1, 1)
  for i, line in ipairs(result_lines()) do g.print(line, 16, 84 + i * 20) end
  g.setColor(0.5, 0.5, 0.55)
  g.print(("frame %d, %d fps"):format(#frames, love.timer.getFPS()), 16, g.getHeight() - 24)
  if REPORT and (search.results or search.err) and screenshot == "none" then
    screenshot = "asked"
    -- Taken once this frame is drawn; written by io so it lands in DIR.
    g.captureScreenshot(function(image)
      local data = image:encode("png")
      local out = assert(io.open(REPORT .. "/screenshot.png", "wb"))
      out:write(data:getString())
      out:close()
      screenshot = "saved"
    end)
  end
end

function love.textinput(text)
  typed = typed .. text
end

function love.keypressed(key)
  if key == "backspace" then
    typed = typed:gsub("[%z\1-\127\194-\244][\128-\191]*$", "")
  elseif key == "return" and typed ~= "" then
    start_search(typed)
  elseif key == "escape" then
    love.event.quit()
  end
end

function love.quit()
  if client then client:close() end
end
