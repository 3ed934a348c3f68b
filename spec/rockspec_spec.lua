-- The rockspec: it lists every module and C source, passes `luarocks lint`,
-- and `luarocks make` into a temporary tree installs a module and a
-- `spotify` command that work against the fake Spotify.
local fake = require "spec.support.fake"

local ROCKSPEC = "rockspec/lua-spotify-scm-1.rockspec"
local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")
local LUA_VERSION = _VERSION:match "%d+%.%d+" -- LuaJIT installs as 5.1

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Run a shell command; returns its output (stdout and stderr) and exit code.
local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"exit:$?\""))
  local out = p:read "*a"
  p:close()
  local body, code = out:match "^(.*)exit:(%d+)%s*$"
  return body, tonumber(code)
end

local setfenv = rawget(_G, "setfenv") -- Lua 5.1 and LuaJIT only

local function load_rockspec()
  local env = {}
  local chunk
  if setfenv then
    chunk = assert(loadfile(ROCKSPEC))
    setfenv(chunk, env)
  else
    chunk = assert(loadfile(ROCKSPEC, "t", env))
  end
  chunk()
  return env
end

local function listing(cmd)
  local out = {}
  for name in (sh(cmd)):gmatch "[^\n]+" do out[#out + 1] = name end
  return out
end

describe("rockspec", function()
  local spec = load_rockspec()

  it("passes luarocks lint", function()
    local out, code = sh("luarocks lint " .. ROCKSPEC)
    assert.equal(0, code, out)
  end)

  it("agrees with the module's version and depends on lua-cjson", function()
    local spotify = require "spotify"
    local major_minor = spotify.VERSION:match "^(%d+%.%d+)%.%d+$"
    assert.truthy(major_minor, "VERSION is not semver: " .. spotify.VERSION)
    assert.equal("scm-1", spec.version)
    assert.same({ "lua >= 5.1", "lua-cjson" }, spec.dependencies)
    assert.equal("builtin", spec.build.type)
    assert.equal("curl", spec.external_dependencies.CURL.library)
    assert.equal("bin/spotify", spec.build.install.bin.spotify)
  end)

  it("lists every Lua module and every C source of the tree", function()
    local modules = spec.build.modules
    local listed = {}
    for name, file in pairs(modules) do
      if type(file) == "string" then listed[file] = name end
    end
    for _, file in ipairs(listing "find lua/spotify -name '*.lua' | sort") do
      local name = file:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      assert.equal(name, listed[file], file .. " is missing from " .. ROCKSPEC)
    end
    local sources = {}
    for _, file in ipairs(modules["spotify.core"].sources) do sources[file] = true end
    for _, file in ipairs(listing "ls src/*.c") do
      assert.is_true(sources[file] == true, file .. " is missing from spotify.core's sources")
    end
  end)

  describe("luarocks make into a temporary tree", function()
    local f, dir, tree

    setup(function()
      f = fake.start {}
      dir = fake.workdir() .. "/rock-" .. LUA
      tree = dir .. "/tree"
      -- Build from a copy so the object files never land in the source tree.
      local out, code = sh(("rm -rf %s && mkdir -p %s && cp -r lua src bin rockspec examples %s"):format(
        quote(dir), quote(dir), quote(dir)))
      assert(code == 0, out)
      out, code = sh(("cd %s && luarocks --lua-version %s make --tree %s --deps-mode=none %s"):format(
        quote(dir), LUA_VERSION, quote(tree), ROCKSPEC))
      assert(code == 0, "luarocks make failed:\n" .. out)
    end)

    teardown(function()
      if f then f:stop() end
      if dir then sh("rm -rf " .. quote(dir)) end
    end)

    -- Environment that sees only the installed tree (plus the system's cjson).
    local function env()
      local path = ("%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;"):format(tree, LUA_VERSION, tree, LUA_VERSION)
      local cpath = ("%s/lib/lua/%s/?.so;;"):format(tree, LUA_VERSION)
      return ("env -u SPOTIFY_BUILD LUA_PATH=%s LUA_PATH_5_4=%s LUA_CPATH=%s LUA_CPATH_5_4=%s "
        .. "SPOTIFY_CLIENT_ID=test-id SPOTIFY_CLIENT_SECRET=test-secret "
        .. "SPOTIFY_API_BASE=%s SPOTIFY_TOKEN_URL=%s"):format(quote(path), quote(path), quote(cpath),
        quote(cpath), quote(f.api_base), quote(f.token_url))
    end

    it("installs a module that loads from the tree and fetches a track", function()
      local script = [[
        local spotify = require "spotify"
        assert(package.searchpath == nil or package.searchpath("spotify.core", package.cpath):find(TREE, 1, true))
        local c = spotify.client { api_base = os.getenv "SPOTIFY_API_BASE", token_url = os.getenv "SPOTIFY_TOKEN_URL" }
        local t = assert(c:track "spotify:track:4iV5W9uYEdYUVa79Axb7Rh")
        local _, err = c:track "nope"
        io.write(spotify.VERSION, " ", t.name, " ", err.kind, "\n")
        c:close()
      ]]
      script = "local TREE = " .. ("%q"):format(tree) .. "\n" .. script
      local out, code = sh(("cd /tmp && %s %s -e %s"):format(env(), LUA, quote(script)))
      assert.equal(0, code, out)
      assert.equal(require("spotify").VERSION .. " Austerity invalid_argument\n", out)
    end)

    it("installs the spotify command", function()
      local out, code = sh(("cd /tmp && %s %s/bin/spotify track 4iV5W9uYEdYUVa79Axb7Rh"):format(env(), quote(tree)))
      assert.equal(0, code, out)
      assert.matches("Track%s+Austerity\n", out)
    end)
  end)
end)
