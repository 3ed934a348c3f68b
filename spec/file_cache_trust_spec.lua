-- The file cache in a directory others can write to (a sticky 1777 one):
-- a file or lock file that is a link, another user's or open to others is
-- never read, written through or waited on; it is a miss, said once.
-- Planting another user's files needs root (chown); as any other user,
-- the links and loose modes are still checked.
local spotify = require "spotify"
local cjson = require "cjson"
local fake = require "spec.support.fake"
local files = require "spec.support.files"

local read, write, run, read_command = files.read_file, files.write_file, files.run, files.read_command
local ROOT = read_command "id -u" == "0"
local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")

local function sh(fmt, ...)
  assert(run(fmt:format(...)), fmt:format(...))
end

-- The names the cache gives its files next to `path`: found by letting a
-- client use a cache in a scratch directory, so the spec never guesses them.
local function cache_file_names(f)
  local scratch = read_command "mktemp -d"
  local c = spotify.client(fake.client_opts(f, { cache = spotify.cache.file(scratch .. "/tokens.json") }))
  assert(c:access_token())
  c:close()
  local names = {}
  for name in read_command("ls -A " .. scratch):gmatch "[^\n]+" do names[#names + 1] = name end
  sh("rm -rf '%s'", scratch)
  return names
end

-- A track fetched in a child process through the file cache at `path`
-- (a call that blocked on a planted file would never end there): true and
-- the cache_warning events' messages, or false when it failed or hung.
local function child_call(f, path, workdir)
  local script = ([[
    package.path = %q; package.cpath = %q
    local spotify = require "spotify"
    local c = spotify.client { client_id = "test-id", client_secret = "test-secret", api_base = %q,
      token_url = %q, timeout = 60, cache = spotify.cache.file(%q),
      on_request = function(e) if e.event == "cache_warning" then print("warning: " .. e.message) end end }
    assert(c:track(%q))
    print "done"
  ]]):format(package.path, package.cpath, f.api_base, f.token_url, path, ID)
  write(workdir .. "/child.lua", script)
  -- the client's timeout is 60 s: a wait for a lock would outlast this
  local out = read_command(("timeout 20 %s '%s/child.lua' 2>&1"):format(LUA, workdir))
  local said = {}
  for line in out:gmatch "[^\n]+" do said[#said + 1] = line:match "^warning: (.*)" end
  return out:find("done", 1, true) ~= nil, said, out
end

local function planted_entry(token)
  local entry = cjson.encode { access_token = token, expires_at = os.time() + 3600 }
  return cjson.encode { ["test-id"] = { value = entry, expires = os.time() + 3600 } }
end

describe("file cache in a shared directory", function()
  local f, dir, outside, names
  setup(function()
    f = fake.start {}
    names = cache_file_names(f)
  end)
  teardown(function() f:stop() end)
  before_each(function()
    f:reset()
    dir = read_command "mktemp -d"
    outside = read_command "mktemp -d"
    sh("chmod 1777 '%s'", dir)
  end)
  after_each(function() sh("rm -rf '%s' '%s'", dir, outside) end)

  local function client(extra)
    local events = {}
    local o = { cache = spotify.cache.file(dir .. "/tokens.json"),
      on_request = function(e) if e.event then events[#events + 1] = e end end }
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(fake.client_opts(f, o)), events
  end

  local function warnings(events)
    local out = {}
    for _, e in ipairs(events) do
      assert.equal("cache_warning", e.event, "an event other than the warning: " .. tostring(e.message))
      out[#out + 1] = e.message
    end
    return out
  end

  local function assert_not_planted(c, token)
    local got = assert(c:access_token())
    assert.are_not.equal(token, got)
    assert(c:track(ID))
    assert(c:track(ID))
    for _, e in ipairs(f:log_for "/v1/") do assert.equal("Bearer " .. got, e.authorization) end
    assert.equal(1, c:stats().token_fetches)
    assert.equal(0, c:stats().cache_hits)
    assert.equal(0, c:stats().cache_errors)
  end

  it("finds its files' names (tokens.json and the lock files next to it)", function()
    assert.truthy(#names >= 2, table.concat(names, " "))
  end)

  it("never takes a token from a file open to others, and says so once", function()
    write(dir .. "/tokens.json", planted_entry "planted-token")
    sh("chmod 644 '%s/tokens.json'", dir)
    local c, events = client()
    assert_not_planted(c, "planted-token")
    local said = warnings(events)
    assert.equal(1, #said)
    assert.matches("open to group or others", said[1], 1, true)
    c:close()
  end)

  it("never takes a token through a link, and replaces the link rather than writing through it", function()
    local planted = planted_entry "linked-token" -- once: it holds an expiry time
    write(outside .. "/target.json", planted)
    sh("chmod 600 '%s/target.json'", outside)
    sh("ln -s '%s/target.json' '%s/tokens.json'", outside, dir)
    local c, events = client()
    assert_not_planted(c, "linked-token")
    assert.equal(planted, read(outside .. "/target.json"))
    assert.matches("symbolic link", warnings(events)[1], 1, true)
    c:close()
  end)

  it("never writes through lock files planted as links, nor hangs on them", function()
    write(outside .. "/victim", "precious")
    for _, name in ipairs(names) do
      if name ~= "tokens.json" then sh("ln -s '%s/victim' '%s/%s'", outside, dir, name) end
    end
    local ok, said, out = child_call(f, dir .. "/tokens.json", outside)
    assert.is_true(ok, out)
    assert.equal("precious", read(outside .. "/victim"))
    assert.equal(1, #said, out)
    assert.matches("symbolic link", said[1], 1, true)
  end)

  it("is not held by lock files planted as links to a FIFO", function()
    sh("mkfifo '%s/fifo'", outside)
    for _, name in ipairs(names) do
      if name ~= "tokens.json" then sh("ln -s '%s/fifo' '%s/%s'", outside, dir, name) end
    end
    local ok, _, out = child_call(f, dir .. "/tokens.json", outside)
    assert.is_true(ok, out)
  end)

  if ROOT then
    it("never takes a token from another user's file", function()
      local planted = planted_entry "foreign-token" -- once: it holds an expiry time
      write(dir .. "/tokens.json", planted)
      sh("chmod 600 '%s/tokens.json' && chown nobody '%s/tokens.json'", dir, dir)
      local c, events = client()
      assert_not_planted(c, "foreign-token")
      assert.matches("another user", warnings(events)[1], 1, true)
      -- and leaves it alone
      assert.equal(planted, read(dir .. "/tokens.json"))
      c:close()
    end)

    it("never waits for another user's lock files, held or not", function()
      local holders = {}
      for _, name in ipairs(names) do
        if name ~= "tokens.json" then
          local lock = dir .. "/" .. name
          write(lock, "")
          sh("chmod 600 '%s' && chown nobody '%s'", lock, lock)
          holders[#holders + 1] = read_command(("flock -x '%s' sleep 60 >/dev/null 2>&1 & echo $!"):format(lock))
        end
      end
      finally(function() for _, pid in ipairs(holders) do run("kill " .. pid) end end)
      local ok, said, out = child_call(f, dir .. "/tokens.json", outside)
      assert.is_true(ok, out)
      assert.equal(1, #said, out)
      assert.matches("another user", said[1], 1, true)
    end)
  end
end)
