-- Numbers in error messages and in the command's output read the same on
-- every interpreter: Lua 5.3+ prints a float such as a Retry-After of 600 as
-- "600.0", Lua 5.1 and LuaJIT as "600". The same errors are made by each
-- interpreter with a build next to this one's, as a subprocess, against one
-- fake Spotify, and their texts compared.
local fake = require "spec.support.fake"
local files = require "spec.support.files"

local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")
local BUILD = os.getenv "SPOTIFY_BUILD" or ("build/" .. LUA)
local BUILDS = BUILD:match "^(.*)/[^/]+$" or "build"
local ROOT = files.read_command "pwd"
local INTERPRETERS = { "lua5.1", "lua5.2", "lua5.3", "lua5.4", "luajit" }

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Every way a number reaches a message: an answer's Retry-After (a spent
-- quota, a 429 above max_retry_after), and fields set from Lua.
local SCRIPT = [[
local spotify = require "spotify"
local errors = require "spotify.errors"
local client = spotify.client { max_retries = 0 }
print(tostring(select(2, client:artist "0TnOYISbd1XYRBk9myaseg")))
print(tostring(select(2, spotify.client { max_retries = 0 }:album "4EcfbzCtbJDk2wMwhT4D1h")))
-- a penalty's time left: a fraction of a second below the Retry-After
print((tostring(select(2, client:artist "0TnOYISbd1XYRBk9myaseg")):gsub("after 599%.9%d* s", "after 600 s")))
print(tostring(errors.new("rate_limited", { status = 429, message = "m", retry_after = 600 / 1 })))
print(tostring(errors.new("server", { status = 1006 / 2, message = "m", retry_after = 5 / 2 })))
print(tostring(errors.new("server", { message = "m", retry_after = 2.49979972839 })))
print(tostring(errors.new("timeout", { retry_after = 1e15 * 10 })))
client:close()
]]

describe("numbers in messages", function()
  local f, dir, present

  setup(function()
    f = fake.start {}
    dir = fake.workdir()
    files.write_file(dir .. "/numbers.lua", SCRIPT)
    present = {}
    for _, lua in ipairs(INTERPRETERS) do
      local so = BUILDS .. "/" .. lua .. "/spotify/core.so"
      if files.read_file(so) and files.run("command -v " .. lua .. " > /dev/null") then
        present[#present + 1] = lua
      end
    end
  end)
  teardown(function() if f then f:stop() end end)

  before_each(function()
    f:faults {
      { path = "/v1/albums/", status = 429, reason = "QUOTA_EXCEEDED", headers = { ["Retry-After"] = "600" },
        times = -1 },
      { path = "/v1/artists/", status = 429, headers = { ["Retry-After"] = "600" }, times = -1 },
    }
  end)

  --- What `lua` prints for a command line (script and arguments), stdout and stderr.
  local function run(lua, args)
    local env = ("env -u LUA_INIT -u LUA_PATH_5_2 -u LUA_PATH_5_3 -u LUA_PATH_5_4 -u LUA_CPATH_5_2 "
      .. "-u LUA_CPATH_5_3 -u LUA_CPATH_5_4 -u SPOTIFY_ACCESS_TOKEN -u SPOTIFY_TOKEN_CACHE -u SPOTIFY_LUA "
      .. "-u SPOTIFY_BUILD "
      .. "LUA_PATH=%s LUA_CPATH=%s SPOTIFY_CLIENT_ID=test-id SPOTIFY_CLIENT_SECRET=test-secret "
      .. "SPOTIFY_API_BASE=%s SPOTIFY_TOKEN_URL=%s SPOTIFY_MAX_RETRIES=0")
      :format(quote(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"),
        quote(ROOT .. "/" .. BUILDS .. "/" .. lua .. "/?.so;;"), quote(f.api_base), quote(f.token_url))
    return files.read_command(("%s %s %s 2>&1; true"):format(env, lua, args))
  end

  -- `make test` builds all five; a run over some of them (make test-asan
  -- ASAN_LUAS=luajit) has only those, and says so.
  it("are built for more than one family of interpreters here", function()
    local old, new = false, false
    for _, lua in ipairs(present) do
      if lua == "lua5.1" or lua == "luajit" then old = true else new = new or lua ~= "lua5.2" end
    end
    if not (old and new) then
      pending("builds found in " .. BUILDS .. ": " .. table.concat(present, ", ")
        .. "; the comparison of Lua 5.1/LuaJIT with 5.3/5.4 needs both (make build)")
    end
  end)

  it("read the same in an error's text on every interpreter", function()
    local first
    for _, lua in ipairs(present) do
      local out = run(lua, quote(dir .. "/numbers.lua"))
      assert.matches("rate_limited %(429%): [^\n]*%(retry after 600 s%) %[GET [^\n]*/v1/artists/", out)
      assert.matches("rate_limited %(429%): m %(retry after 600 s%)\n", out)
      assert.matches("server %(503%): m %(retry after 2%.5 s%)\n", out)
      assert.matches("server: m %(retry after 2%.5 s%)\n", out)
      assert.matches("waiting for an earlier Retry%-After %(retry after 600 s%)", out)
      assert.matches("timeout %(retry after 1e%+16 s%)", out)
      if first then
        assert.equal(first.out, out, lua .. " and " .. first.lua .. " differ")
      else
        first = { lua = lua, out = out }
      end
    end
    assert.truthy(first)
  end)

  it("read the same in the command's output on every interpreter", function()
    local first
    for _, lua in ipairs(present) do
      local bin = quote(ROOT .. "/bin/spotify")
      local out = run(lua, bin .. " artist 0TnOYISbd1XYRBk9myaseg")
        .. run(lua, bin .. " album 4EcfbzCtbJDk2wMwhT4D1h")
      out = out:gsub("after %d%d:%d%d", "after HH:MM")
      assert.matches("%(retry after 600 s%)", out)
      assert.matches("try again after HH:MM %(in 10 min%)", out)
      assert.not_matches("600%.0", out)
      if first then
        assert.equal(first.out, out, lua .. " and " .. first.lua .. " differ")
      else
        first = { lua = lua, out = out }
      end
    end
    assert.truthy(first)
  end)
end)
