-- The file cache as a response store (spotify.responses{store =
-- spotify.cache.file(path)}): every answer a file of its own in a 0700
-- directory beside the file, named by a digest of its key; lock files
-- only while held; the file itself (the token, penalties, pacing) within
-- a bound it can always be read back at; expired answers swept.
local spotify = require "spotify"
local core = require "spotify.core"
local cjson = require "cjson"
local fake = require "spec.support.fake"
local files = require "spec.support.files"
local fleet = require "spec.support.fleet"

local read, write, run, read_command = files.read_file, files.write_file, files.run, files.read_command
local testing = core.testing()
local digest = testing.digest

local function sh(fmt, ...)
  assert(run(fmt:format(...)), fmt:format(...))
end

-- The names in a directory (none when it is missing), sorted.
local function names_in(dir)
  local out = {}
  for name in read_command(("ls -A '%s' 2>/dev/null"):format(dir)):gmatch "[^\n]+" do out[#out + 1] = name end
  table.sort(out)
  return out
end

local function count(list, pattern)
  local n = 0
  for _, v in ipairs(list) do
    if v:find(pattern) then n = n + 1 end
  end
  return n
end

local function mode_of(path) return read_command(("stat -c %%a '%s'"):format(path)) end

describe("file cache as a response store", function()
  local f, dir, path
  setup(function() f = fake.start {} end)
  teardown(function() f:stop() end)
  before_each(function()
    f:reset()
    dir = read_command "mktemp -d"
    path = dir .. "/tokens.json"
  end)
  after_each(function() sh("rm -rf '%s'", dir) end)

  -- A client whose token cache and response store are the file at path.
  local function client(extra)
    local o = { cache = spotify.cache.file(path), timeout = 30,
      responses = spotify.responses { store = spotify.cache.file(path), ttl = 3600, lru = 0 } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(fake.client_opts(f, o))
  end

  it("keeps each answer in a file of its own named by a digest, and one lock file for every key", function()
    local c = client()
    local ids = fake.ids(60, "N")
    for _, id in ipairs(ids) do assert(c:track(id)) end
    assert(c:search("my private query", { limit = 5 }))
    c:close()
    assert.same({ "tokens.json", "tokens.json.d", "tokens.json.lock" }, names_in(dir))
    assert.equal("700", mode_of(path .. ".d"))
    local names = names_in(path .. ".d")
    assert.equal(62, #names, table.concat(names, " "))
    assert.equal(1, count(names, "^locks$"))
    for _, name in ipairs(names) do
      if name ~= "locks" then
        assert.matches("^%x+$", name)
        assert.equal(64, #name)
      end
      assert.equal("600", mode_of(path .. ".d/" .. name))
    end
    -- neither a name nor the file shows a URL or the query
    assert.falsy(read(path):find("private", 1, true))
    assert.falsy(read(path):find("response:", 1, true))
    -- a second client (a process started later) is answered from the store
    local mark = #f:log()
    local c2 = client()
    for _, id in ipairs(ids) do assert.equal(id, assert(c2:track(id)).id) end
    assert(c2:search("my private query", { limit = 5 }))
    assert.equal(0, #f:log_for("/v1/", mark))
    assert.equal(61, c2:stats().response_shared_hits)
    c2:close()
  end)

  it("locks any number of keys without a file of their own, one holder each", function()
    local key = "response:https://api.spotify.com/v1/search?q=my%20secret%20song&type=track"
    local one, two = spotify.cache.file(path), spotify.cache.file(path)
    for i = 1, 200 do assert.is_true(one:lock(key .. i, 30)) end
    assert.same({ "locks" }, names_in(path .. ".d"))
    assert.falsy(read(path .. ".d/locks"):find("secret", 1, true))
    for i = 1, 200 do assert.is_false(two:lock(key .. i, 30)) end
    for i = 1, 200 do one:unlock(key .. i) end
    for i = 1, 200 do assert.is_true(two:lock(key .. i, 30)) end
    assert.is_false(one:lock(key .. 1, 30))
    for i = 1, 200 do two:unlock(key .. i) end
    assert.same({ "locks" }, names_in(path .. ".d"))
    -- the token's renewal lock too: nothing beside the file names a key
    local c = client()
    assert(c:access_token())
    c:close()
    assert.same({ "tokens.json", "tokens.json.d", "tokens.json.lock" }, names_in(dir))
  end)

  it("frees a lock whose holder died, and one whose holder outlived its ttl", function()
    local lua, build = fleet.runtime()
    -- A holder that dies holding the lock (it exits leaving its Lua state,
    -- as a crash would: under ASan that is no leak of the module's)
    sh([[ASAN_OPTIONS=detect_leaks=0:intercept_tls_get_addr=0 %s -e 'package.cpath = "%s/?.so;" .. package.cpath
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      local c = require("spotify").cache.file("%s"); assert(c:lock("response:dead", 60)); os.exit(0)']],
      lua, build, path)
    local one, two = spotify.cache.file(path), spotify.cache.file(path)
    assert.is_true(one:lock("response:dead", 60))
    one:unlock "response:dead"
    -- a holder that hangs (holds on past its ttl) loses the lock to one contender
    local alive = io.popen(([[%s -e 'package.cpath = "%s/?.so;" .. package.cpath
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      local c = require("spotify").cache.file("%s"); assert(c:lock("response:hung", 0.5))
      io.read()' > /dev/null]]):format(lua, build, path), "w")
    finally(function() alive:close() end)
    local held = false
    for _ = 1, 200 do -- the child has taken it (a generous bound)
      if not one:lock("response:hung", 60) then
        held = true
        break
      end
      one:unlock "response:hung"
      core.sleep(0.05)
    end
    assert.is_true(held)
    local taken
    for _ = 1, 200 do -- its ttl ends
      taken = one:lock("response:hung", 60)
      if taken then break end
      core.sleep(0.05)
    end
    assert.is_true(taken)
    assert.is_false(two:lock("response:hung", 60))
    one:unlock "response:hung"
  end)

  it("keeps the token through 1,000 answers and more", function()
    local c = client()
    local token = assert(c:access_token())
    local ids = fake.ids(1100, "K")
    for _, id in ipairs(ids) do assert(c:track(id)) end
    c:close()
    local mark = #f:log()
    local c2 = client()
    assert.equal(token, (assert(c2:access_token())))
    assert.equal(1, #f:log_for "/api/token")
    for i = 1, #ids, 50 do assert.equal(ids[i], assert(c2:track(ids[i])).id) end
    assert.equal(0, #f:log_for("/v1/", mark))
    assert.equal(0, c2:stats().cache_errors)
    c2:close()
  end)

  it("keeps the file within its bound: large entries under other keys never push the token out", function()
    local c = client()
    local token = assert(c:access_token())
    c:close()
    local cache = spotify.cache.file(path)
    local value = ("x"):rep(200 * 1024)
    for i = 1, 12 do cache:set("big:" .. i, value .. i, 3600) end
    assert.is_true(#read(path) <= 1024 * 1024, "the file grew to " .. #read(path))
    assert.equal(value .. 12, cache:get "big:12") -- the latest is kept
    local c2 = client()
    assert.equal(token, (assert(c2:access_token())))
    assert.equal(1, #f:log_for "/api/token")
    assert.equal(1, c2:stats().cache_hits)
    c2:close()
  end)

  it("reads back a file over the bound written before, and keeps its token", function()
    local c = client()
    local token = assert(c:access_token())
    c:close()
    -- 1.5 MiB of entries beside the token, as an earlier version could leave
    local object = cjson.decode(read(path))
    for i = 1, 6 do object["big:" .. i] = { value = ("y"):rep(256 * 1024), expires = os.time() + 3600 } end
    write(path, cjson.encode(object))
    local cache = spotify.cache.file(path)
    cache:set("small", "v", 3600)
    assert.is_true(#read(path) <= 1024 * 1024)
    assert.equal("v", cache:get "small")
    local c2 = client()
    assert.equal(token, (assert(c2:access_token())))
    assert.equal(1, #f:log_for "/api/token")
    c2:close()
  end)

  it("lets one process at a time hold a key's lock, among several contending", function()
    local lua, build = fleet.runtime()
    local script = dir .. "/contender.lua"
    -- each round: take the lock (polling), find no mark, mark the shared
    -- file as held by this process, find the mark still its own a moment
    -- later, unmark it, let go
    write(script, ([[
      package.cpath = "%s/?.so;" .. package.cpath
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      local spotify = require "spotify"
      local core = require "spotify.core"
      local cache, mark, overlaps, me = spotify.cache.file("%s"), "%s/held", 0, tostring({})
      for _ = 1, 100 do
        while not cache:lock("response:contended:lock", 30) do core.sleep(0.001) end
        local f = io.open(mark, "r")
        if f then overlaps = overlaps + 1; f:close() end
        f = assert(io.open(mark, "w")); f:write(me); f:close()
        core.sleep(0.001)
        f = io.open(mark, "r")
        if not f or f:read "*a" ~= me then overlaps = overlaps + 1 end
        if f then f:close() end
        os.remove(mark)
        cache:unlock("response:contended:lock")
      end
      print(overlaps)
    ]]):format(build, path, dir))
    local cmd = {}
    for i = 1, 4 do cmd[#cmd + 1] = ("%s %s > %s/contender%d 2>&1 &"):format(lua, script, dir, i) end
    local proc = assert(io.popen(table.concat(cmd, " ") .. " wait"))
    proc:read "*a"
    proc:close()
    for i = 1, 4 do assert.equal("0", read(("%s/contender%d"):format(dir, i)):match "^%s*(.-)%s*$") end
  end)

  describe("sweeping", function()
    setup(function() require("spec.support.virtual_clock").install() end)
    teardown(function() testing.virtual_clock(false) end)

    it("removes expired answers and dead writers' temporary files when writing", function()
      local old = spotify.cache.file(path)
      for i = 1, 5 do old:set("response:old" .. i, "v" .. i, 5) end
      old:set("response:kept", "k", 3600)
      local d = path .. ".d/"
      local tmp = d .. digest "response:crashed" .. ".tmp.1.1"
      write(tmp, "half")
      sh("touch -d '1 hour ago' '%s'", tmp)
      write(d .. "notes.txt", "not the cache's")
      core.sleep(10) -- the virtual clock: wall time moves on 10 s
      local new = spotify.cache.file(path) -- its first write sweeps
      new:set("response:new", "n", 3600)
      local want = { digest "response:kept", digest "response:new", "notes.txt" }
      table.sort(want)
      assert.same(want, names_in(path .. ".d"))
      assert.equal("k", new:get "response:kept")
      assert.is_nil(new:get "response:old1")
    end)
  end)

  it("treats a cut-short, corrupt or loosened answer file as a miss and replaces it", function()
    -- the cache object says why it does not use a loosened file, once
    local store = spotify.cache.file(dir .. "/other.json")
    store:set("response:loose", "v", 60)
    sh("chmod 644 '%s/other.json.d/%s'", dir, digest "response:loose")
    local v, note = store:get "response:loose"
    assert.is_nil(v)
    assert.matches("open to group or others", note, 1, true)
    assert.same({}, { store:get "response:loose" })

    local ID = "4iV5W9uYEdYUVa79Axb7Rh"
    local c = client()
    assert(c:track(ID))
    c:close()
    local names = names_in(path .. ".d")
    assert.equal(2, #names)
    assert.equal("locks", names[2])
    local entry = path .. ".d/" .. names[1]
    local whole = read(entry)
    for _, damage in ipairs { "cut", "garbage", "empty", "loose" } do
      if damage == "cut" then write(entry, whole:sub(1, #whole - 10)) end
      if damage == "garbage" then write(entry, "not an entry at all") end
      if damage == "empty" then write(entry, "") end
      if damage == "loose" then
        write(entry, whole)
        sh("chmod 644 '%s'", entry)
      end
      local mark = #f:log()
      local c2 = client()
      assert.equal(ID, assert(c2:track(ID)).id, damage)
      assert.equal(1, #f:log_for("/v1/tracks/", mark), damage)
      assert.equal(0, c2:stats().cache_errors, damage)
      c2:close()
      assert.equal("600", mode_of(entry), damage)
      local c3 = client()
      assert(c3:track(ID))
      assert.equal(1, #f:log_for("/v1/tracks/", mark), damage .. ": not replaced")
      c3:close()
    end
  end)

  it("never uses a directory that is a link or open to others", function()
    local outside = read_command "mktemp -d"
    finally(function() sh("rm -rf '%s'", outside) end)
    for _, plant in ipairs { "link", "open" } do
      sh("rm -rf '%s.d'", path)
      if plant == "link" then
        sh("ln -s '%s' '%s.d'", outside, path)
      else
        sh("mkdir -m 755 '%s.d'", path)
      end
      local c = client()
      local mark = #f:log()
      for _ = 1, 2 do
        for _, id in ipairs(fake.ids(3, "D")) do assert(c:track(id)) end
      end
      assert.equal(6, #f:log_for("/v1/tracks/", mark)) -- nothing kept: each a miss
      assert.equal(0, c:stats().cache_errors)
      c:close()
      local stored, note = spotify.cache.file(path):set("response:x", "v", 60)
      assert.is_nil(stored)
      assert.matches(plant == "link" and "symbolic link" or "open to group or others", note, 1, true)
      assert.same({}, names_in(plant == "link" and outside or path .. ".d"))
    end
  end)

  it("loses no answer when several processes write at once", function()
    local lua, build = fleet.runtime()
    local start_at, cmd = testing.time() + 1.5, {}
    -- three processes, 150 IDs of their own each and 50 they all look up
    local ranges = { { "P", 1, 150 }, { "P", 151, 300 }, { "P", 301, 450 } }
    for i, r in ipairs(ranges) do
      for _, part in ipairs { r, { "S", 1, 50 } } do
        cmd[#cmd + 1] = ("%s spec/support/file_store_worker.lua build=%s api_base=%s token_url=%s path=%s "
          .. "prefix=%s from=%d to=%d start_at=%.3f > %s/out%d%s 2>&1 &"):format(lua, build, f.api_base,
          f.token_url, path, part[1], part[2], part[3], start_at, dir, i, part[1])
      end
    end
    local proc = assert(io.popen(table.concat(cmd, " ") .. " wait"))
    proc:read "*a"
    proc:close()
    for i = 1, 3 do
      for _, p in ipairs { "P", "S" } do
        local text = read(("%s/out%d%s"):format(dir, i, p)) or ""
        local ok, summary = pcall(cjson.decode, text)
        assert(ok and type(summary) == "table", text)
        assert.equal(0, summary.failed, summary.first_error)
      end
    end
    assert.equal(1, #f:log_for "/api/token")
    -- the IDs they share were asked once each: one process held the store's
    -- lock, the others took its answer from the store
    assert.equal(50, #f:log_for "/v1/tracks/S")
    assert.equal(450, #f:log_for "/v1/tracks/P")
    -- every answer is in the store: a later client asks for none of them
    local mark = #f:log()
    local c = client()
    for _, id in ipairs(fake.ids(450, "P")) do assert(c:track(id)) end
    for _, id in ipairs(fake.ids(50, "S")) do assert(c:track(id)) end
    assert.equal(0, #f:log_for("/v1/", mark))
    assert.equal(501, #names_in(path .. ".d")) -- and the lock file
    c:close()
  end)

  it("works with rate_limit and batch_window: pacing in the file, answers beside it", function()
    local c = client { rate_limit = { requests = 1000, window = 2 }, batch_window = 0.005 }
    local ids = fake.ids(40, "B")
    local reqs = {}
    for _, id in ipairs(ids) do reqs[#reqs + 1] = c:start("track", id) end
    while c:poll(0.01) > 0 do end
    for i, r in ipairs(reqs) do assert.equal(ids[i], assert(r:result()).id) end
    for _, id in ipairs(ids) do assert(c:track(id)) end
    c:close()
    local object = cjson.decode(read(path))
    local kinds = {}
    for k in pairs(object) do kinds[#kinds + 1] = k:match "^(%a+):" end
    table.sort(kinds)
    assert.equal(0, count(kinds, "^response$"))
    assert.truthy(count(kinds, "^pace$") > 0, table.concat(kinds, " "))
    assert.equal(1, count(kinds, "^token$"))
    -- a later client: every ID from the store, the batch's answer included
    local mark = #f:log()
    local c2 = client()
    for _, id in ipairs(ids) do assert.equal(id, assert(c2:track(id)).id) end
    c2:close()
    assert.equal(0, #f:log_for("/v1/", mark))
  end)
end)
