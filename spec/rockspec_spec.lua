-- The rockspec: it lists every module and C source, passes `luarocks lint`,
-- and `luarocks make` into a temporary tree installs a module and a
-- `spotify` command that work against the fake Spotify.
local fake = require "spec.support.fake"

local ROCKSPEC = "rockspec/lua-spotify-scm-1.rockspec"
local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")

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

local function load_rockspec(file)
  file = file or ROCKSPEC
  local env = {}
  local chunk
  if setfenv then
    chunk = assert(loadfile(file))
    setfenv(chunk, env)
  else
    chunk = assert(loadfile(file, "t", env))
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

  it("has a release rockspec of the module's version, the same but for version and tag", function()
    local spotify = require "spotify"
    assert.matches("^%d+%.%d+%.%d+$", spotify.VERSION)
    local release = "rockspec/lua-spotify-" .. spotify.VERSION .. "-1.rockspec"
    local out, code = sh("luarocks lint " .. release)
    assert.equal(0, code, out)
    local rel = load_rockspec(release)
    assert.equal(spotify.VERSION .. "-1", rel.version)
    assert.equal("v" .. spotify.VERSION, rel.source.tag)
    rel.version, rel.source.tag = spec.version, nil
    assert.same(spec, rel)
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

  describe("the install commands of doc/install.md", function()
    -- Run as written, in a copy of the tree (the build leaves objects behind)
    -- with HOME in a temporary directory, so `--local` means a fresh tree.
    local f, dir, home, out_install

    --- The shell lines of doc/install.md's fenced block between <!-- NAME:begin ... --> and <!-- NAME:end -->.
    local function readme_block(name)
      local readme = assert(io.open("doc/install.md")):read "*a"
      local block = readme:match("<!%-%- " .. name .. ":begin[^\n]*%-%->\n```sh\n(.-)```\n<!%-%- "
        .. name .. ":end %-%->")
      assert(block, "doc/install.md has no <!-- " .. name .. ":begin --> ... <!-- " .. name .. ":end --> sh block")
      return block
    end

    local function clean_env()
      return ("env -u SPOTIFY_BUILD -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT "
        .. "-u LUA_INIT_5_4 HOME=%s"):format(quote(home))
    end

    setup(function()
      f = fake.start {}
      dir = fake.workdir() .. "/readme-install-" .. LUA
      home = dir .. "/home"
      local out, code = sh(("rm -rf %s && mkdir -p %s/src-tree %s && cp -r lua src bin rockspec examples %s/src-tree")
        :format(quote(dir), quote(dir), quote(home), quote(dir)))
      assert(code == 0, out)
      local script = dir .. "/install.sh"
      local fh = assert(io.open(script, "w"))
      fh:write("set -e\n", readme_block "install")
      fh:close()
      out_install, code = sh(("cd %s/src-tree && %s sh %s"):format(quote(dir), clean_env(), quote(script)))
      assert(code == 0, "the install commands of doc/install.md failed:\n" .. out_install)
    end)

    teardown(function()
      if f then f:stop() end
      if dir then sh("rm -rf " .. quote(dir)) end
    end)

    it("leave no C core in the tree they ran in", function()
      local out, code = sh(("test ! -e %s/src-tree/spotify"):format(quote(dir)))
      assert.equal(0, code, out)
    end)

    it("install a module that each interpreter loads, as doc/install.md checks it", function()
      local out, code = sh(("cd %s/src-tree && %s sh -e -c %s"):format(quote(dir), clean_env(),
        quote(readme_block "check")))
      assert.equal(0, code, out)
      local version = require("spotify").VERSION
      assert.equal(("%s\n%s\n%s\n"):format(version, version, version), out)
    end)

    --- Shell prefix that sees only the installed tree for `lua` (as luarocks path sets it).
    local function installed_env(lua)
      local v = lua == "lua5.4" and "5.4" or "5.1"
      return ("cd /tmp && %s SPOTIFY_CLIENT_ID=test-id SPOTIFY_CLIENT_SECRET=test-secret SPOTIFY_API_BASE=%s "
        .. "SPOTIFY_TOKEN_URL=%s sh -c 'eval \"$(luarocks --lua-version %s path --local)\" && exec \"$0\" \"$@\"' ")
        :format(clean_env(), quote(f.api_base), quote(f.token_url), v)
    end

    for _, lua in ipairs { "lua5.1", "lua5.4", "luajit" } do
      it("gives " .. lua .. " a module from the home tree that fetches a track", function()
        local script = [[
          local spotify = require "spotify"
          local where = package.searchpath and package.searchpath("spotify.core", package.cpath)
            or package.loaded["spotify.core"] and "?"
          local c = spotify.client { api_base = os.getenv "SPOTIFY_API_BASE",
            token_url = os.getenv "SPOTIFY_TOKEN_URL" }
          local t = assert(c:track "spotify:track:4iV5W9uYEdYUVa79Axb7Rh")
          local _, err = c:track "nope"
          io.write(spotify.VERSION, " ", t.name, " ", err.kind, " ", tostring(where), "\n")
          c:close()
        ]]
        if lua ~= "lua5.4" then -- package.searchpath is 5.2+; LuaJIT has it, Lua 5.1 does not
          script = script:gsub("package%.searchpath and ", "rawget(package, 'searchpath') and ")
        end
        local out, code = sh(installed_env(lua) .. lua .. " -e " .. quote(script))
        assert.equal(0, code, out)
        local version = require("spotify").VERSION
        assert.equal(version .. " Austerity invalid_argument ", out:sub(1, #version + 28))
        if lua ~= "lua5.1" then
          assert.equal(home .. "/.luarocks/lib/lua/" .. (lua == "lua5.4" and "5.4" or "5.1") .. "/spotify/core.so\n",
            out:sub(#version + 29))
        end
      end)
    end

    it("install the spotify command", function()
      local out, code = sh(installed_env("lua5.4") .. "spotify track 4iV5W9uYEdYUVa79Axb7Rh")
      assert.equal(0, code, out)
      assert.matches("Track%s+Austerity\n", out)
      assert.matches("/home/%.luarocks/bin/spotify", (sh(installed_env("lua5.4") .. "sh -c 'command -v spotify'")))
    end)
  end)
end)
