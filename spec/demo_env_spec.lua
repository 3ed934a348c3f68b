-- One interpreter from `make demo` to your own code, on a machine that has
-- only that interpreter and no apt-get: in a copy of this tree, with a PATH
-- of symlinks that hides apt-get, dpkg-query and every other interpreter,
-- `make demo` builds for the one there and says so; `make fake`'s printed
-- lines then work as printed, with `lua` an interpreter that has no build;
-- `lua bin/spotify` says what to run instead. With cmake hidden too,
-- `make demo` names the packages for dnf, apk, pacman and Homebrew.
-- It builds the C core once in the copy: run on lua5.4 and LuaJIT, the
-- interpreters a bare machine has.
local files = require "spec.support.files"
local fake = require "spec.support.fake"
local path = require "spec.support.path"

local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")
local HIDDEN = "apt-get|apt|dpkg-query|dpkg|lua|lua5.[0-9]*|luajit*"
local OTHER = LUA == "lua5.1" and "lua5.2" or "lua5.1" -- the `lua` with no build

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
  .. "-u SPOTIFY_ACCESS_TOKEN -u SPOTIFY_CLIENT_ID -u SPOTIFY_CLIENT_SECRET -u SPOTIFY_API_BASE "
  .. "-u SPOTIFY_TOKEN_URL -u SPOTIFY_DEMO -u LUA -u MAKEFLAGS -u MAKELEVEL -u BUILD -u LUAS"

if LUA ~= "lua5.4" and LUA ~= "luajit" then
  describe("make demo on a machine with one interpreter", function()
    pending("run on lua5.4 and luajit: it builds the C core in a copy of the tree")
  end)
  return
end

describe("make demo on a machine with only " .. LUA .. " and no apt-get", function()
  local dir, tree, only, with_lua, demo_out, demo_code

  setup(function()
    dir = fake.workdir() .. "/demo-env-" .. LUA
    tree = dir .. "/tree"
    assert(files.run(("rm -rf %s && mkdir -p %s"):format(quote(dir), quote(tree))))
    -- this tree as a fresh clone would have it (with the changes not yet committed)
    assert(files.run(("git ls-files -co --exclude-standard | tar -cf - -T - | (cd %s && tar -xf -)")
      :format(quote(tree))))
    only = path.without(dir .. "/only", HIDDEN)
    path.link(only, LUA, LUA)
    with_lua = path.without(dir .. "/with-lua", HIDDEN)
    path.link(with_lua, LUA, LUA)
    path.link(with_lua, "lua", OTHER)
    demo_out, demo_code = sh(("cd %s && %s PATH=%s make demo < /dev/null"):format(quote(tree), CLEAN, quote(only)))
  end)
  teardown(function()
    if dir then files.run("rm -rf " .. quote(dir)) end
  end)

  it("builds for that interpreter, says so, and writes build/env.sh for it", function()
    assert.equal(0, demo_code, demo_out)
    assert.matches("== Building the C core for " .. LUA .. ":", demo_out, 1, true)
    assert.matches("Next steps, on " .. LUA, demo_out, 1, true)
    assert.matches("Track:  Austerity", demo_out, 1, true)
    local env = assert(files.read_file(tree .. "/build/env.sh"))
    assert.matches("SPOTIFY_LUA=" .. LUA .. "\n", env, 1, true)
  end)

  it("prints make fake's lines, which work as printed with a `lua` that has no build", function()
    local port = files.free_port()
    local out_file = dir .. "/fake.out"
    local pid = tonumber(files.read_command(("cd %s && %s FAKE_PORT=%d PATH=%s setsid make fake > %s 2>&1 "
      .. "< /dev/null & echo $!"):format(quote(tree), CLEAN, port, quote(only), quote(out_file))))
    local printed = ""
    for _ = 1, 200 do
      printed = files.read_file(out_file) or ""
      if printed:find "Ctrl%-C" then break end
      require("socket").sleep(0.1)
    end
    -- every line that is a command, as printed
    local script = {}
    for line in printed:gmatch "[^\n]+" do
      if line:match "^export " or line:match "^%. " or line:match "^\"" then script[#script + 1] = line end
    end
    files.write_file(dir .. "/fake-lines.sh", table.concat(script, "\n") .. "\n")
    local out, code = sh(("cd / && %s PATH=%s sh -e %s"):format(CLEAN, quote(with_lua), quote(dir .. "/fake-lines.sh")))
    os.execute(("kill -TERM -%d 2> /dev/null"):format(pid))
    assert.equal(7, #script, printed)
    assert.equal(0, code, printed .. "\n" .. out)
    assert.matches("Track%s+Austerity", out)          -- bin/spotify track ...
    assert.matches("Track:  Austerity by", out, 1, true) -- "$SPOTIFY_LUA" examples/catalog.lua
  end)

  it("runs bin/spotify on the built interpreter when `lua` has none, and says what to do when run by it", function()
    local out, code = sh(("cd %s && %s PATH=%s bin/spotify help"):format(quote(tree), CLEAN, quote(with_lua)))
    assert.equal(0, code, out)
    assert.matches("usage: spotify", out, 1, true)
    out, code = sh(("cd %s && %s PATH=%s lua bin/spotify help"):format(quote(tree), CLEAN, quote(with_lua)))
    assert.equal(2, code, out)
    assert.matches("not built for " .. OTHER, out, 1, true)
    assert.matches("make build LUAS=" .. OTHER, out, 1, true)
    assert.matches("has a build (" .. LUA .. ")", out, 1, true)
  end)

  it("names the packages for dnf, apk, pacman and Homebrew when one is missing", function()
    local bare = path.without(dir .. "/bare", HIDDEN .. "|cmake")
    path.link(bare, LUA, LUA)
    local out, code = sh(("cd %s && %s PATH=%s make demo < /dev/null"):format(quote(tree), CLEAN, quote(bare)))
    assert.is_true(code ~= 0, out)
    assert.matches("no apt-get here, and these are missing (Debian names): cmake", out, 1, true)
    for _, manager in ipairs { "dnf install cmake", "apk add cmake", "pacman -S cmake", "brew install cmake" } do
      assert.matches(manager, out, 1, true)
    end
  end)
end)
