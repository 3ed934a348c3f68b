-- `make install` / `make uninstall`: the module and the command for this
-- interpreter under a temporary PREFIX, the command run from there with no
-- LUA_PATH and outside this tree, against the fake Spotify; DESTDIR stages
-- the same files under another root with PREFIX's paths inside; uninstall
-- leaves nothing behind.
local fake = require "spec.support.fake"
local files = require "spec.support.files"

local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")
local BUILD = os.getenv "SPOTIFY_BUILD" or ("build/" .. LUA)
local BUILDS = BUILD:match "^(.*)/[^/]+$" or "build"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function sh(cmd)
  local out = files.read_command("(" .. cmd .. ") 2>&1; echo \"exit:$?\"")
  local body, code = out:match "^(.-)\n?exit:(%d+)$"
  return body, tonumber(code)
end

local CLEAN = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_2 -u LUA_CPATH_5_2 -u LUA_PATH_5_3 -u LUA_CPATH_5_3 "
  .. "-u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT -u SPOTIFY_BUILD -u SPOTIFY_LUA -u SPOTIFY_TOKEN_CACHE "
  .. "-u SPOTIFY_ACCESS_TOKEN"

--- Every file under `dir`, relative to it, sorted.
local function listing(dir)
  local out = {}
  for line in files.read_command(("cd %s && find . -type f | sort"):format(quote(dir))):gmatch "[^\n]+" do
    out[#out + 1] = line
  end
  return out
end

describe("make install", function()
  local f, dir, prefix

  setup(function()
    f = fake.start {}
    dir = fake.workdir() .. "/install-" .. LUA
    prefix = dir .. "/prefix with space"
    assert(files.run("rm -rf " .. quote(dir) .. " && mkdir -p " .. quote(dir)))
  end)
  teardown(function()
    if f then f:stop() end
    if dir then files.run("rm -rf " .. quote(dir)) end
  end)

  it("puts a command under PREFIX that runs from there, and uninstall takes every file away", function()
    local out, code = sh(("make --no-print-directory install LUA=%s BUILD=%s PREFIX=%s"):format(LUA, BUILDS,
      quote(prefix)))
    assert.equal(0, code, out)
    local version = LUA == "luajit" and "5.1" or LUA:sub(4)
    local installed = listing(prefix)
    local want = {
      ["./bin/spotify"] = true,
      ["./lib/lua/" .. version .. "/spotify/core.so"] = true,
      ["./share/lua/" .. version .. "/spotify/init.lua"] = true,
      ["./share/lua/" .. version .. "/spotify/cache/redis.lua"] = true,
    }
    local found = 0
    for _, name in ipairs(installed) do if want[name] then found = found + 1 end end
    assert.equal(4, found, table.concat(installed, "\n"))

    local env = ("%s SPOTIFY_CLIENT_ID=test-id SPOTIFY_CLIENT_SECRET=test-secret SPOTIFY_API_BASE=%s "
      .. "SPOTIFY_TOKEN_URL=%s"):format(CLEAN, quote(f.api_base), quote(f.token_url))
    -- from /, with no LUA_PATH: only the installed module can answer
    local ran, status = sh(("cd / && %s %s track 4iV5W9uYEdYUVa79Axb7Rh"):format(env,
      quote(prefix .. "/bin/spotify")))
    assert.equal(0, status, ran)
    assert.matches("Track%s+Austerity", ran)
    out, code = sh(("make --no-print-directory uninstall LUA=%s PREFIX=%s"):format(LUA, quote(prefix)))
    assert.equal(0, code, out)
    assert.same({}, listing(prefix))
  end)

  it("stages under DESTDIR with PREFIX's paths in the command", function()
    local stage = dir .. "/stage"
    local out, code = sh(("make --no-print-directory install LUA=%s BUILD=%s DESTDIR=%s PREFIX=/opt/lua-spotify")
      :format(LUA, BUILDS, quote(stage)))
    assert.equal(0, code, out)
    local launcher = assert(files.read_file(stage .. "/opt/lua-spotify/bin/spotify"))
    assert.truthy(launcher:find("/opt/lua-spotify/share/lua-spotify/spotify.lua", 1, true), launcher)
    assert.falsy(launcher:find(stage, 1, true), launcher)
    assert.truthy(files.read_file(stage .. "/opt/lua-spotify/lib/lua/" .. (LUA == "luajit" and "5.1" or LUA:sub(4))
      .. "/spotify/core.so"))
    out, code = sh(("make --no-print-directory uninstall LUA=%s DESTDIR=%s PREFIX=/opt/lua-spotify")
      :format(LUA, quote(stage)))
    assert.equal(0, code, out)
    assert.same({}, listing(stage))
  end)
end)
