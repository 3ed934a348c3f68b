-- examples/love run by LÖVE 11 under Xvfb, as a game ships: from a folder
-- of its own with no secret in it or in its environment, talking to the
-- gateway of examples/gateway (in nginx) in front of the fake Spotify,
-- whose search answers only after DELAY seconds: the results must arrive
-- while frames keep coming, and no frame may have waited on the network.
-- The example writes one line per frame and a screenshot
-- (SPOTIFY_LOVE_REPORT). Its direct mode (a developer's own tool, with the
-- credentials) still works.
local fake = require "spec.support.fake"
local files = require "spec.support.files"
local gateway = require "spec.support.gateway"

local DELAY = 1.5         -- the fake's delay on /v1/search
local MAX_UPDATE = 0.25   -- seconds love.update (with client:poll) may take, a sixth of DELAY
local MAX_GAP = 0.5       -- seconds between two frames while waiting, a third of DELAY
local MIN_WAIT_FRAMES = 20

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function root()
  return files.read_command "pwd"
end

--- Can Xvfb start here? nil when it can, else what it said.
local function xvfb_problem()
  if not files.run "command -v xvfb-run > /dev/null" then return "xvfb-run is not installed (package xvfb)" end
  local out = files.read_command "timeout 20 xvfb-run -a -s '-screen 0 640x480x24' true 2>&1; echo \"exit:$?\""
  if out:match "exit:0$" then return nil end
  return out
end

--- Width and height from a PNG's IHDR, or nil when `data` is not a PNG.
local function png_size(data)
  if not data or data:sub(1, 8) ~= "\137PNG\r\n\26\n" or data:sub(13, 16) ~= "IHDR" then return nil end
  local function u32(at)
    local a, b, c, d = data:byte(at, at + 3)
    return ((a * 256 + b) * 256 + c) * 256 + d
  end
  return u32(17), u32(21)
end

local problem = xvfb_problem()
if problem then
  describe("LÖVE example", function()
    pending("skipped: Xvfb cannot start on this machine: " .. problem)
  end)
  return
end

--- Run the example from a copy in `name` (a game's folder) with `vars`
-- (and no credentials unless given): exit code, output, report, frames, folder.
local function run_love(name, vars)
  local dir = fake.workdir() .. "/" .. name
  local game = dir .. "/game"
  local top = root()
  assert(files.run(("rm -rf %s && mkdir -p %s && cp -R %s/examples/love/. %s")
    :format(quote(dir), quote(game), quote(top), quote(game))))
  -- LÖVE runs LuaJIT: the module from this tree with its LuaJIT build.
  local path = top .. "/lua/?.lua;" .. top .. "/lua/?/init.lua;;"
  local cpath = top .. "/build/luajit/?.so;;"
  assert(io.open(top .. "/build/luajit/spotify/core.so"), "build/luajit/spotify/core.so is missing: make build")
  local assigns = {}
  for k, v in pairs(vars) do assigns[#assigns + 1] = k .. "=" .. quote(v) end
  local env = ("env -u LD_PRELOAD -u LUA_INIT -u SPOTIFY_CLIENT_ID -u SPOTIFY_CLIENT_SECRET -u SPOTIFY_API_BASE "
    .. "-u SPOTIFY_TOKEN_URL LUA_PATH=%s LUA_CPATH=%s SPOTIFY_LOVE_REPORT=%s %s")
    :format(quote(path), quote(cpath), quote(dir), table.concat(assigns, " "))
  local cmd = ("%s timeout 60 xvfb-run -a -s '-screen 0 640x480x24' love %s > %s/out.txt 2>&1; echo $?")
    :format(env, quote(game), quote(dir))
  local exit_code = tonumber(files.read_command(cmd))
  local report = files.read_file(dir .. "/frames.txt") or ""
  local frames = {}
  for n, t, dt, update, state in report:gmatch "frame (%d+) t=(%S+) dt=(%S+) update=(%S+) (%a+)\n" do
    frames[#frames + 1] = { n = tonumber(n), t = tonumber(t), dt = tonumber(dt), update = tonumber(update),
      state = state }
  end
  return exit_code, files.read_file(dir .. "/out.txt") or "", report, frames, dir
end

describe("LÖVE example under Xvfb, through a gateway", function()
  local f, node, dir, frames, report, exit_code, output

  setup(function()
    assert(files.run "command -v love > /dev/null", "love is not installed (package love, in the Makefile's DEBS)")
    f = fake.start {}
    f:faults { { path = "/v1/search", delay = DELAY } }
    node = gateway.start(f, { workers = 2 })
    exit_code, output, report, frames, dir = run_love("love", { SPOTIFY_GATEWAY = node.base })
  end)

  teardown(function()
    if node then node:stop() end
    if f then f:stop() end
  end)

  it("holds no secret: not in the game's folder, not in its environment, not in what it was sent", function()
    assert.equal(0, exit_code, output)
    local found = files.read_command("grep -rl -e test-secret " .. quote(dir .. "/game")
      .. " || true")
    assert.equal("", found)
    assert.is_nil(gateway.leaks({ { body = report }, { body = output } }, f))
    -- the gateway's one token: the game asked for none
    assert.equal(1, #f:log_for "/api/token")
  end)

  it("runs, searches and quits by itself", function()
    assert.equal(0, exit_code, output)
    assert.matches("\ndone frames=%d+ took=", report, nil, false, output)
    local searches = f:log_for "/v1/search"
    assert.equal(1, #searches)
    assert.matches("q=Muse", searches[1].query)
  end)

  it("says where it failed when no gateway answers", function()
    local code, out, rep = run_love("love-nogateway", { SPOTIFY_GATEWAY = "http://127.0.0.1:9/v1" })
    assert.equal(0, code, out)
    assert.matches("\nerror [^\n]*network", rep, nil, false, rep)
  end)

  it("shows the results", function()
    local shown = {}
    for line in report:gmatch "shown ([^\n]+)" do shown[#shown + 1] = line end
    assert.equal(10, #shown, report)
    assert.equal(" 1. Supermassive Black Hole - Muse (3:32)", shown[1])
    assert.equal("10. Sing About It - The Wood Brothers (3:41)", shown[10])
    local w, h = png_size(files.read_file(dir .. "/screenshot.png"))
    assert.equal(640, w, "screenshot.png is missing or not a PNG")
    assert.equal(480, h)
  end)

  it("keeps drawing while the search waits on the network", function()
    local waiting, first_result = 0, nil
    for _, fr in ipairs(frames) do
      if fr.state == "waiting" then waiting = waiting + 1 end
      if fr.state == "results" and not first_result then first_result = fr end
    end
    assert.truthy(first_result, report)
    -- The fake really held the answer: the results came DELAY seconds in ...
    assert.is_true(first_result.t >= DELAY * 0.9, ("results after %.3f s"):format(first_result.t))
    -- ... and frames kept coming meanwhile.
    assert.is_true(waiting >= MIN_WAIT_FRAMES, waiting .. " frames while waiting")
    for i = 3, #frames do -- the first frames include LÖVE's own start-up
      local gap = frames[i].t - frames[i - 1].t
      assert.is_true(gap < MAX_GAP, ("frame %d came %.3f s after the one before"):format(i, gap))
    end
  end)

  it("never spends a frame waiting on the network", function()
    local worst, at = 0, nil
    for _, fr in ipairs(frames) do
      if fr.update > worst then worst, at = fr.update, fr.n end
    end
    assert.is_true(#frames > MIN_WAIT_FRAMES)
    assert.is_true(worst < MAX_UPDATE, ("love.update took %.3f s in frame %s"):format(worst, tostring(at)))
  end)
end)

describe("LÖVE example under Xvfb, direct (a developer's own tool)", function()
  local f

  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)

  it("talks to Spotify itself with SPOTIFY_LOVE_DIRECT=1 and the credentials", function()
    local code, out, rep = run_love("love-direct", { SPOTIFY_LOVE_DIRECT = "1", SPOTIFY_CLIENT_ID = "test-id",
      SPOTIFY_CLIENT_SECRET = "test-secret", SPOTIFY_API_BASE = f.api_base, SPOTIFY_TOKEN_URL = f.token_url })
    assert.equal(0, code, out)
    assert.matches("shown  1%. Supermassive Black Hole %- Muse", rep)
    assert.equal(1, #f:log_for "/api/token")
  end)
end)

-- A shipped game, as doc/games.md lays it out: main.lua, conf.lua and
-- lua-spotify's Lua files inside a .love archive; spotify/core.so and
-- cjson.so beside it. LUA_PATH and LUA_CPATH name nothing that exists, so
-- the system's Lua paths are hidden and only the game's own directory is on
-- package.cpath, as on a player's machine.
describe("LÖVE example packed as a .love, the system's Lua paths hidden", function()
  local f, node, dir, top

  --- Runs the packed game until it quits, or until `stop_at` is in its output;
  -- its output, exit code (nil when stopped), and the report it wrote.
  local function play(game, stop_at)
    local report_dir = dir .. "/report"
    assert(files.run("rm -rf " .. quote(report_dir) .. " && mkdir -p " .. quote(report_dir)))
    -- a shipped game holds no secret: it talks to the gateway
    local env = ("env -u LD_PRELOAD -u LUA_INIT -u SPOTIFY_CLIENT_ID -u SPOTIFY_CLIENT_SECRET "
      .. "LUA_PATH=/nonexistent/?.lua LUA_CPATH=/nonexistent/?.so SPOTIFY_GATEWAY=%s "
      .. "SPOTIFY_LOVE_REPORT=%s"):format(quote(node.base), quote(report_dir))
    local out = dir .. "/out.txt"
    local pid = tonumber(files.read_command(("cd / && %s setsid sh -c %s > %s 2>&1 < /dev/null & echo $!"):format(env,
      -- stdout line by line: LÖVE prints a Lua error at once, then shows it until closed
      quote(("timeout --foreground 60 xvfb-run -a -s '-screen 0 640x480x24' stdbuf -oL -eL love %s; echo \"exit:$?\"")
        :format(quote(game))),
      quote(out))))
    local text = ""
    for _ = 1, 600 do
      text = files.read_file(out) or ""
      if text:find "exit:%d+" or (stop_at and text:find(stop_at, 1, true)) then break end
      require("socket").sleep(0.1)
    end
    files.run(("kill -TERM -%d 2> /dev/null"):format(pid))
    return text, tonumber(text:match "exit:(%d+)"), files.read_file(report_dir .. "/frames.txt") or ""
  end

  setup(function()
    assert(files.run "command -v love > /dev/null", "love is not installed (package love, in the Makefile's DEBS)")
    f = fake.start {}
    node = gateway.start(f, { workers = 1 })
    top = root()
    dir = fake.workdir() .. "/love-packed"
    local stage, packed = dir .. "/stage", dir .. "/packed"
    assert(io.open(top .. "/build/luajit/spotify/core.so"), "build/luajit/spotify/core.so is missing: make build")
    local cjson_so = files.read_command "luajit -e 'print(package.searchpath(\"cjson\", package.cpath))'"
    assert(files.run(("rm -rf %s && mkdir -p %s/spotify/cache %s/spotify"):format(quote(dir), quote(stage),
      quote(packed))))
    assert(files.run(("cp %s/examples/love/main.lua %s/examples/love/conf.lua %s/ "
      .. "&& cp %s/lua/spotify/*.lua %s/spotify/ && rm %s/spotify/types.lua "
      .. "&& cp %s/lua/spotify/cache/*.lua %s/spotify/cache/")
      :format(quote(top), quote(top), quote(stage), quote(top), quote(stage), quote(stage), quote(top), quote(stage))))
    assert(files.run(("cd %s && python3 -m zipfile -c %s main.lua conf.lua spotify"):format(quote(stage),
      quote(packed .. "/game.love"))))
    assert(files.run(("cp %s/build/luajit/spotify/core.so %s/spotify/core.so && cp %s %s/cjson.so")
      :format(quote(top), quote(packed), quote(cjson_so), quote(packed))))
  end)

  teardown(function()
    if node then node:stop() end
    if f then f:stop() end
  end)

  it("finds its search results with core.so and cjson.so beside the archive", function()
    local out, code, report = play(dir .. "/packed/game.love")
    assert.equal(0, code, out)
    local shown = 0
    for _ in report:gmatch "shown [^\n]+" do shown = shown + 1 end
    assert.equal(10, shown, report .. out)
    assert.equal(1, #f:log_for "/v1/search")
  end)

  it("stops at module 'cjson' not found when the game does not carry cjson.so", function()
    assert(files.run(("mkdir -p %s/nocjson/spotify && cp %s/packed/game.love %s/nocjson/ "
      .. "&& cp %s/packed/spotify/core.so %s/nocjson/spotify/"):format(quote(dir), quote(dir), quote(dir), quote(dir),
      quote(dir))))
    local out = play(dir .. "/nocjson/game.love", "module 'cjson' not found")
    assert.truthy(out:find("module 'cjson' not found", 1, true), out)
  end)
end)
