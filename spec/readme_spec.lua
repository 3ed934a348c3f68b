-- Every fenced code block of README.md and of the guides in doc/*.md is
-- run here, as written, or says why it is not. An HTML comment right before
-- a block tells how:
--
--   (none)                  a ```lua block: runs in a fresh interpreter
--                           after `local spotify = require "spotify"` and
--                           `local client = spotify.client()`, with the
--                           fake Spotify's settings in the environment, as
--                           `make fake` prints them; a block fails when it
--                           raises or leaves a non-nil `err`
--   run: redis ...          a ```lua block with a real redis-server on the
--                           port written 6379 (and once more with the server
--                           stopped: a Redis that is down fails no call);
--                           "after the Redis block above" runs the page's
--                           first Redis block before it
--   run: nginx ...          a ```nginx block: a complete nginx.conf run by a
--                           real nginx (spec/support/nginx.lua), 8080 taken
--                           for a free port
--   run: console ...        a ```console transcript: each `$` line runs, and
--                           its output must match the lines under it
--   run: shell ...          a ```sh block run by sh -e in this tree (lua5.4
--                           and build/lua5.4 read as the spec's interpreter
--                           and build; build/env.sh as that file written by
--                           examples/env.sh for them)
--   run: install-deps names a ```sh block of lines .ci/install-deps prints
--                           where apt-get is missing
--   run: make fake ...      the export lines `make fake` prints
--   run: json ...           a ```json block that must parse
--   install: / check:       spec/rockspec_spec.lua runs them
--   not run: REASON         reported as pending, with the reason
--
-- ```text blocks are diagrams and usage lines, not code.
local cjson = require "cjson"
local fake = require "spec.support.fake"
local files = require "spec.support.files"
local keys = require "spec.support.keys"

local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")
local BUILD = os.getenv "SPOTIFY_BUILD" or ("build/" .. LUA)
local ROOT = files.read_command "pwd"

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

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

--- The pages whose blocks are run: the README, then doc/*.md.
local function pages()
  local out = { "README.md" }
  for name in files.read_command("ls doc"):gmatch "[^\n]+" do
    if name:match "%.md$" then out[#out + 1] = "doc/" .. name end
  end
  return out
end

--- A page's fenced blocks: {file, line, lang, body, marker}, where marker is
-- the HTML comment on the line right before the fence (or nil).
local function blocks(file)
  local out, previous, open = {}, nil, nil
  local n = 0
  for line in (assert(io.open(file)):read "*a" .. "\n"):gmatch "([^\n]*)\n" do
    n = n + 1
    if open then
      if line:match "^```%s*$" then
        out[#out + 1] = open
        open = nil
      else
        open.body = open.body .. line .. "\n"
      end
    elseif line:match "^```" then
      local marker = previous and previous:match "^<!%-%-%s*(.-)%s*%-%->$"
      open = { file = file, line = n, lang = line:match "^```(%S*)", body = "", marker = marker }
    end
    if not open then previous = line end
  end
  assert(not open, file .. ": a block opened at line " .. (open and open.line or 0) .. " never closes")
  return out
end

local function where(b) return ("%s:%d (```%s)"):format(b.file, b.line, b.lang) end

--- Environment assignments for a process that should talk to the fake.
local function fake_env(f, extra)
  local vars = {
    SPOTIFY_CLIENT_ID = "test-id", SPOTIFY_CLIENT_SECRET = "test-secret",
    SPOTIFY_API_BASE = f.api_base, SPOTIFY_TOKEN_URL = f.token_url,
    LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
    LUA_CPATH = ROOT .. "/" .. BUILD .. "/?.so;;",
  }
  for k, v in pairs(extra or {}) do vars[k] = v end
  local out = { "env -u LUA_INIT -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT_5_4 -u SPOTIFY_ACCESS_TOKEN",
    "-u SPOTIFY_LUA",
    "-u SPOTIFY_TOKEN_CACHE -u SPOTIFY_MARKET -u COLUMNS" }
  for k, v in pairs(vars) do out[#out + 1] = k .. "=" .. quote(v) end
  return table.concat(out, " ")
end

local PRELUDE = 'local spotify = require "spotify"\nlocal client = spotify.client()\n'
-- `err` left set by the block is a failure (a global nil when it declares none).
local POSTLUDE = '\nif err ~= nil then error("the block left err = " .. tostring(err), 0) end\n'

--- Run Lua source in a fresh interpreter against the fake: output, exit code.
local function run_lua(f, dir, source, extra_env)
  local script = dir .. "/readme_block.lua"
  write(script, source)
  return sh(fake_env(f, extra_env) .. " " .. LUA .. " " .. quote(script))
end

describe("README.md and doc/*.md", function()
  local all = {}
  for _, page in ipairs(pages()) do
    for _, b in ipairs(blocks(page)) do all[#all + 1] = b end
  end
  local f, dir

  setup(function()
    f = fake.start {}
    dir = fake.workdir()
  end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  it("has a language on every block and a way to run every code block", function()
    local runnable = { lua = true, text = true, sh = true, console = true, nginx = true, json = true }
    assert.is_true(#all > 40, "only " .. #all .. " blocks found")
    for _, b in ipairs(all) do
      assert.is_true(runnable[b.lang] == true, where(b) .. ": no language, or one this spec cannot run")
      if b.lang ~= "lua" and b.lang ~= "text" then
        assert.truthy(b.marker, where(b) .. ": a " .. b.lang .. " block needs a comment saying how it is run")
      end
      if b.marker then
        assert.truthy(b.marker:match "^run: " or b.marker:match "^not run: %S" or b.marker:match "^install:begin"
          or b.marker:match "^check:begin", where(b) .. ": unknown marker <!-- " .. b.marker .. " -->")
      end
    end
  end)

  local redis_before, redis_page -- the source of a page's first Redis block, for those that follow it
  for _, b in ipairs(all) do
    local title = where(b)
    if b.file ~= redis_page then redis_before, redis_page = nil, b.file end
    local marker = b.marker or ""
    if marker:match "^not run: " then
      it(title, function() pending(title .. " is not run: " .. marker:match "^not run: (.*)$") end)
    elseif marker:match "^install:begin" or marker:match "^check:begin" then
      local name = marker:match "^(%a+):begin"
      it(title .. " is run by spec/rockspec_spec.lua", function()
        local text = assert(io.open("spec/rockspec_spec.lua")):read "*a"
        assert.truthy(text:find('readme_block "' .. name .. '"', 1, true))
      end)
    elseif b.lang == "lua" and marker:match "^run: redis" then
      local source = b.body
      if marker:match "after the Redis block above" then
        source = assert(redis_before, title .. ": no Redis block before it") .. "\n" .. source
      else
        redis_before = source
      end
      it(title .. " shares the token through a real Redis, and fails no call when Redis is down", function()
        local redis_server = require "spec.support.redis"
        local server = redis_server.start()
        -- Debian's lua-redis is installed for 5.1-5.3; on 5.4 its plain-Lua
        -- file is found the way the README says.
        local prelude = PRELUDE .. 'package.path = package.path .. ";/usr/share/lua/5.1/?.lua"\n'
        -- and a call on the client the block made last, which uses the cache
        local code = prelude .. source:gsub("6379", tostring(server.port)) .. POSTLUDE
          .. 'assert(client:track "4iV5W9uYEdYUVa79Axb7Rh")\nprint("stats", client:stats().cache_errors)\n'
        local out, status = run_lua(f, dir, code)
        local conn = server:connect(1)
        local stored = conn:get("spotify:" .. keys.of(f))
        server:kill()
        local down_out, down_status = run_lua(f, dir, code)
        server:stop()
        assert.equal(0, status, out)
        assert.matches("stats\t0\n", out)
        assert.truthy(stored, "no token in Redis after the block ran")
        assert.truthy(cjson.decode(stored).access_token)
        assert.equal(0, down_status, down_out)
        assert.not_matches("stats\t0\n", down_out) -- the outage was counted, and the calls went on
      end)
    elseif b.lang == "lua" then
      it(title .. " runs against the fake Spotify", function()
        local out, status = run_lua(f, dir, PRELUDE .. b.body .. POSTLUDE)
        assert.equal(0, status, out)
        assert.not_matches("spotify: ", out) -- no error object printed
      end)
    elseif b.lang == "nginx" then
      assert(marker:match "^run: nginx", title .. ": an nginx block must be marked run: nginx")
      it(title .. " is a complete nginx.conf that serves a track, with nothing in the error log", function()
        local nginx = require "spec.support.nginx"
        local conf = b.body:gsub("listen 8080;", "listen 127.0.0.1:${PORT};")
        local server = nginx.start {
          conf = conf,
          env = { SPOTIFY_CLIENT_ID = "test-id", SPOTIFY_CLIENT_SECRET = "test-secret",
            SPOTIFY_API_BASE = f.api_base, SPOTIFY_TOKEN_URL = f.token_url },
        }
        local status, body = server:get "/track/4iV5W9uYEdYUVa79Axb7Rh"
        local status2, body2 = server:get "/track/nope"
        local complaints = {}
        for _, line in ipairs(server:complaints()) do
          -- spec/support/nginx.lua's own readiness probe, which this conf does not serve
          if not line:find('"/_ready"', 1, true) and not line:find("/html/_ready", 1, true) then
            complaints[#complaints + 1] = line
          end
        end
        server:stop()
        assert.equal(200, status, body)
        assert.equal("Austerity", cjson.decode(body).name)
        assert.equal(200, status2, body2)
        assert.equal("invalid_argument", cjson.decode(body2).error)
        assert.equal(0, #complaints, table.concat(complaints, "\n"))
        assert.equal(1, #f:log_for "/api/token")
      end)
    elseif b.lang == "console" then
      assert(marker:match "^run: console", title .. ": a console block must be marked run: console")
      it(title .. ": every command prints what the README shows", function()
        -- `spotify` on PATH is this tree's bin/spotify on this interpreter
        local bin = dir .. "/readme-bin"
        assert(os.execute(("mkdir -p %s"):format(quote(bin))))
        write(bin .. "/spotify", ("#!/bin/sh\nexec %s %s/bin/spotify \"$@\"\n"):format(LUA, ROOT))
        assert(os.execute("chmod +x " .. quote(bin .. "/spotify")))
        local demo = fake.start { demo = true }
        local function normal(text)
          -- (a token's length, so its answer's, varies with the fake's counter;
          -- a cache key's digest, in its hash tag's braces or not, with the fake's port)
          return (text:gsub("127%.0%.0%.1:%d+", "127.0.0.1:PORT"):gsub("%d+ ms", "N ms")
            :gsub("(/api/token %-> 200 %(attempt 1, N ms, )%d+ bytes", "%1N bytes")
            :gsub("%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ", "DATE"):gsub("Expires in  %d+ s", "Expires in  N s")
            :gsub('"expires_in":%d+', '"expires_in":0'):gsub("(%%3A)%%7B(" .. ("%x"):rep(64) .. ")%%7D", "%1%2")
            :gsub("(%%3A)" .. ("%x"):rep(64), "%1<digest>")
            :gsub("\n+$", ""))
        end
        local commands, current = {}, nil
        for line in b.body:gmatch "([^\n]*)\n" do
          local cmd = line:match "^%$ (.*)$"
          if cmd then
            current = { cmd = cmd, expected = "" }
            commands[#commands + 1] = current
          elseif current then
            current.expected = current.expected .. line .. "\n"
          end
        end
        local ok, err = pcall(function()
          assert.is_true(#commands > 10)
          for _, c in ipairs(commands) do
            local out = sh(("cd /tmp && %s PATH=%s:$PATH sh -c %s"):format(fake_env(demo), quote(bin), quote(c.cmd)))
            local want, got = normal(c.expected), normal(out)
            if want:match "^{" and got:match "^{" then
              -- a JSON line: the same object, whatever the order of its keys
              local function decoded(text)
                local lines = {}
                for l in (text .. "\n"):gmatch "([^\n]*)\n" do
                  lines[#lines + 1] = l:match "^{" and cjson.decode(l) or l
                end
                return lines
              end
              assert.same(decoded(want), decoded(got), "$ " .. c.cmd)
            else
              assert.equal(want, got, "$ " .. c.cmd)
            end
          end
        end)
        demo:stop()
        assert(ok, err)
      end)
    elseif b.lang == "sh" and marker:match "^run: make fake" then
      it(title .. " are the lines make fake prints", function()
        local port = files.free_port()
        local out_file = dir .. "/fake.out"
        local pid = tonumber(files.read_command(
          ("FAKE_PORT=%d setsid sh examples/fake.sh > %s 2>&1 < /dev/null & echo $!"):format(port, quote(out_file))))
        local printed
        for _ = 1, 100 do
          printed = files.read_file(out_file) or ""
          if printed:find "Ctrl%-C" then break end
          require("socket").sleep(0.1)
        end
        os.execute(("kill -TERM -%d 2> /dev/null"):format(pid))
        for line in b.body:gmatch "([^\n]+)" do
          local want = line:gsub("PORT", tostring(port))
          assert.truthy(printed:find("\n" .. want .. "\n", 1, true),
            "make fake did not print: " .. want .. "\n" .. printed)
        end
      end)
    elseif b.lang == "sh" and marker:match "^run: install%-deps names" then
      it(title .. " are the lines .ci/install-deps prints for other package managers", function()
        -- the packages `make demo` needs on lua5.4, as the Makefile names them
        local makefile = assert(io.open "Makefile"):read "*a"
        local debs = makefile:match "\nDEMO_DEBS%s*:=%s*([^\n]+)" .. " "
          .. makefile:match "\nDEBS_lua5%.4%s*:=%s*([^\n]+)"
        local out, status = sh(".ci/install-deps --names " .. debs)
        assert.equal(0, status, out)
        for line in b.body:gmatch "([^\n]+)" do
          local command = line:gsub("%s+#.*$", "")
          assert.truthy(out:find(command, 1, true),
            ".ci/install-deps --names did not print: " .. command .. "\n" .. out)
        end
      end)
    elseif b.lang == "sh" and marker:match "^run: shell" then
      it(title .. " runs in this tree against the fake (on " .. LUA .. ")", function()
        -- the block names lua5.4 and its build; the spec runs its own interpreter
        local script = b.body:gsub("build/lua5%.4", BUILD):gsub("lua5%.4", LUA)
        if script:find("build/env.sh", 1, true) then
          local env_file = dir .. "/env.sh"
          local out, status = sh(("sh examples/env.sh %s %s > %s"):format(LUA, quote(BUILD), quote(env_file)))
          assert.equal(0, status, out)
          script = script:gsub("build/env%.sh", env_file)
        end
        write(dir .. "/readme_block.sh", script)
        local out, status = sh(fake_env(f, { LUA_PATH = "", LUA_CPATH = "" }) .. " sh -e "
          .. quote(dir .. "/readme_block.sh"))
        assert.equal(0, status, out)
        assert.matches("Track:%s+Austerity", out)
        assert.matches("Artists: 3 of", out)
      end)
    elseif b.lang == "json" then
      it(title .. " parses and names the LuaLS meta file of this tree", function()
        local config = cjson.decode(b.body)
        local library = config["workspace.library"]
        assert.is_table(library)
        assert.matches("lua/spotify/types%.lua$", library[1])
        assert.truthy(io.open("lua/spotify/types.lua"), "lua/spotify/types.lua is missing")
      end)
    end
  end
end)
