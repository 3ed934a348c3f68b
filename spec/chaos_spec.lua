-- Chaos: the fake Spotify killed and restarted in the middle of a run,
-- Redis killed and restarted under a Redis token cache, and the file cache
-- on a filesystem that is full.
local cjson = require "cjson"
local spotify = require "spotify"
local core = require "spotify.core"
local socket = require "socket"
local fake = require "spec.support.fake"
local keys = require "spec.support.keys"
local files = require "spec.support.files"
local redis_server = require "spec.support.redis"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

local function ids(n)
  local out = {}
  for i = 1, n do out[i] = ("%022d"):format(i) end
  return out
end

describe("chaos: the fake Spotify killed and restarted", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)

  it("calls in flight succeed on retry or fail with network; later calls succeed", function()
    local c = spotify.client(fake.client_opts(f, { max_retries = 3 }))
    assert(c:access_token())
    -- every request waits 0.5 s in the fake: all 24 are on the wire when it dies
    f:faults { { path = "/v1/tracks/", delay = 0.5, times = -1 } }
    local reqs = {}
    for i = 1, 24 do reqs[i] = c:start("track", ("%022d"):format(i)) end
    local give_up = core.now() + 30
    local t0 = core.now()
    while core.now() - t0 < 0.2 do c:poll(0.01) end
    assert.equal(24, #f:log_for "/v1/tracks/") -- all of them reached it
    f:kill()
    f:restart() -- a fresh fake: no faults, and the old token is unknown (401)
    local pending = true
    while pending and core.now() < give_up do
      c:poll(0.01)
      pending = false
      for _, r in ipairs(reqs) do pending = pending or not r:done() end
    end
    assert.is_false(pending, "started requests did not finish")
    local succeeded = 0
    for i, r in ipairs(reqs) do
      local v, err = r:result()
      if v then
        assert.equal(("%022d"):format(i), v.id)
        succeeded = succeeded + 1
      else
        assert.equal("network", err.kind, tostring(err))
      end
    end
    assert.is_true(succeeded >= 1, "no call in flight survived the restart")
    -- the old fake answered none of them: every success is a retry that the
    -- new one answered
    assert.is_true(#f:log_for "/v1/tracks/" >= succeeded)
    -- later calls, blocking and started, single and plural
    assert.equal(ID, assert(c:track(ID)).id)
    assert.equal(60, #assert(c:tracks(ids(60))))
    local late = c:start("track", ID)
    while not late:done() and core.now() < give_up do c:poll(0.01) end
    assert.equal(ID, assert(late:result()).id)
    c:close()
  end)

  it("a call while it is down fails with network after its retries; once back, calls succeed", function()
    local c = spotify.client(fake.client_opts(f, { max_retries = 1 }))
    assert(c:track(ID))
    f:kill()
    local before = c:stats().requests
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("network", err.kind)
    assert.equal(2, c:stats().requests - before) -- one attempt and one retry
    f:restart()
    assert.equal(ID, assert(c:track(ID)).id)
    assert.equal(2, c:stats().token_fetches) -- the restarted fake knew no token
    c:close()
  end)
end)

describe("chaos: Redis killed and restarted under a Redis token cache", function()
  local f, server
  setup(function()
    f = fake.start {}
    server = redis_server.start()
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("never fails a call, and the cache is used again once Redis is back", function()
    -- tokens live 3 s and are renewed 2 s early: about one renewal (and so
    -- one SET to Redis) a second
    f:config { expires_in = 3 }
    local connects = 0
    local cache = spotify.cache.redis(nil, { timeout = 0.3, connect = function()
      connects = connects + 1
      return server:connect(0.3)
    end })
    local c = spotify.client(fake.client_opts(f, { cache = cache, refresh_buffer = 2 }))
    local calls, killed, restarted = 0, false, false
    local t0 = core.now()
    while core.now() - t0 < 5 do
      local elapsed = core.now() - t0
      if not killed and elapsed > 1 then
        server:kill()
        killed = true
      elseif killed and not restarted and elapsed > 2.2 then
        server:restart()
        restarted = true
      end
      local v, err = c:track(ID)
      assert.is_nil(err, err and tostring(err))
      assert.equal(ID, v.id)
      calls = calls + 1
      socket.sleep(0.05)
    end
    assert.is_true(restarted)
    assert.is_true(calls >= 20, calls .. " calls")
    local stats = c:stats()
    assert.is_true(stats.cache_errors >= 1, "no cache error while Redis was down")
    assert.is_true(connects >= 2, "the cache never reconnected")
    -- the token renewed after the restart is in the new Redis (read after
    -- access_token(), which may renew it once more)
    local token = c:access_token()
    local entry = server:connect(1):get("spotify:" .. keys.of(f))
    assert.is_string(entry)
    assert.equal(token, cjson.decode(entry).access_token)
    c:close()
  end)
end)

describe("chaos: the file cache on a full filesystem", function()
  local f, dir, path
  local mounted = false
  setup(function()
    f = fake.start {}
    dir = files.read_command "mktemp -d /tmp/lua-spotify-full.XXXXXX"
    -- a small tmpfs (the suite runs as root, as CI does)
    mounted = files.run(("mount -t tmpfs -o size=64k tmpfs %s"):format(dir))
    assert(mounted, "spec/chaos: cannot mount a tmpfs on " .. dir .. " (needs root)")
    path = dir .. "/tokens.json"
  end)
  teardown(function()
    if mounted then os.execute("umount " .. dir) end
    if dir then os.execute("rmdir " .. dir) end
    if f then f:stop() end
  end)
  before_each(function()
    f:reset()
    os.execute(("rm -rf %s/* %s/.[!.]*"):format(dir, dir))
  end)

  local function fill()
    os.execute(("dd if=/dev/zero of=%s/fill bs=4k >/dev/null 2>&1"):format(dir))
    -- full: not even one more byte fits
    local probe = io.open(dir .. "/probe", "wb")
    local ok = probe and probe:write "x" and probe:close()
    os.remove(dir .. "/probe")
    assert.is_falsy(ok, "the filesystem is not full")
  end

  local function entries()
    local out = {}
    for name in files.read_command("ls -A " .. dir):gmatch "[^\n]+" do out[#out + 1] = name end
    table.sort(out)
    return out
  end

  -- The cache file is absent or whole JSON: never empty, never cut short.
  local function intact()
    local text = files.read_file(path)
    if text == nil then return nil end
    local ok, data = pcall(cjson.decode, text)
    assert.is_true(ok and type(data) == "table", "corrupt cache file: " .. ("%q"):format(text:sub(1, 200)))
    return data
  end

  it("calls succeed when the cache file cannot be written at all", function()
    fill()
    local c = spotify.client(fake.client_opts(f, { cache = spotify.cache.file(path) }))
    for _ = 1, 3 do assert.equal(ID, assert(c:track(ID)).id) end
    assert.is_true(c:stats().cache_errors >= 1)
    intact()
    c:close()
  end)

  it("keeps the old file whole when a renewal cannot be written, and no files pile up", function()
    -- other apps' entries make the file span several pages
    local other = spotify.cache.file(path)
    for i = 1, 30 do other:set("other-app-" .. i, ("x"):rep(300), 3600) end
    local c = spotify.client(fake.client_opts(f, { cache = spotify.cache.file(path) }))
    local first = assert(c:access_token())
    assert.equal(first, cjson.decode((assert(other:get(keys.of(f))))).access_token)
    fill()
    local seen
    for round = 1, 5 do -- each round a 401, so a renewal and a failed write
      f:config { revoke = true }
      assert.equal(ID, assert(c:track(ID)).id)
      local data = intact()
      assert.is_table(data, "the cache file is gone")
      assert.equal(("x"):rep(300), other:get "other-app-7")
      assert.equal(first, cjson.decode((assert(other:get(keys.of(f))))).access_token)
      if round == 1 then seen = entries() end
      assert.same(seen, entries()) -- a failed write leaves nothing behind
    end
    assert.equal(6, c:stats().token_fetches)
    assert.is_true(c:stats().cache_errors >= 5, "the writes did not fail")
    -- room again: the next renewal is written
    os.remove(dir .. "/fill")
    f:config { revoke = true }
    assert(c:track(ID))
    local now = assert(c:access_token())
    assert.not_equal(first, now)
    assert.equal(now, cjson.decode((assert(other:get(keys.of(f))))).access_token)
    assert.equal(("x"):rep(300), other:get "other-app-30")
    c:close()
  end)
end)
