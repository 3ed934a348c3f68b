-- client:start / client:poll / req:done / req:result / req:cancel / fd_info.
local spotify = require "spotify"
local core = require "spotify.core"
local fake = require "spec.support.fake"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local ALBUM = "4EcfbzCtbJDk2wMwhT4D1h"

-- `n` requests in `log`, each answered only once all `n` were in flight
-- together (the fake's barrier): they ran at once. (No clock is read.)
local function assert_concurrent(log, n)
  assert.equal(n, #log)
  for i, e in ipairs(log) do
    assert.is_true(e.met, ("request %d of %d answered before all %d were in flight"):format(i, n, n))
  end
end

describe("non-blocking use", function()
  local f
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  local function client(extra)
    return spotify.client(fake.client_opts(f, extra))
  end

  -- Poll like a game loop until every request is done or `limit` seconds pass.
  local function frames(c, reqs, limit)
    local give_up = core.now() + (limit or 5)
    local count = 0
    repeat
      c:poll(0.01)
      count = count + 1
      local all = true
      for _, r in ipairs(reqs) do all = all and r:done() end
      if all then return count end
    until core.now() > give_up
    error("requests did not finish within " .. tostring(limit or 5) .. " s")
  end

  it("returns at once and finishes through poll", function()
    local c = client()
    assert(c:access_token())
    -- the answer waits until a second request arrives, which this spec
    -- sends only once start has returned: a start that waited for its
    -- answer would wait in vain (the fake gives up after 5 s)
    f:faults { { path = "/v1/tracks/", barrier = 2, times = 2 } }
    local req = c:start("track", ID)
    assert.is_false(req:done())
    local released = spotify.client(fake.client_opts(f))
    local other = released:start("track", ID)
    local v, err = req:result()
    assert.is_nil(v)
    assert.equal("invalid_argument", err.kind)
    local n, give_up = 0, core.now() + 10
    repeat
      c:poll(0.01)
      released:poll(0.01)
      n = n + 1
    until (req:done() and other:done()) or core.now() > give_up
    assert.is_true(n > 1)
    local t = assert(req:result())
    assert.equal(ID, t.id)
    assert_concurrent(f:log_for "/v1/tracks/", 2)
    released:close()
  end)

  it("runs several started requests at the same time", function()
    local c = client()
    assert(c:access_token())
    f:faults { { path = "/v1/", barrier = 4, times = -1 } }
    local reqs = { c:start("track", ID), c:start("album", ALBUM), c:start("markets"),
      c:start("search", "Muse") }
    frames(c, reqs, 10)
    assert_concurrent(f:log_for "/v1/", 4)
    assert.equal(ID, assert(reqs[1]:result()).id)
    assert.equal(ALBUM, assert(reqs[2]:result()).id)
    assert.is_table(assert(reqs[3]:result()))
    assert.is_table(assert(reqs[4]:result()).tracks)
  end)

  it("hands a started request its answer when it comes during a plural call", function()
    local c = client { batch = false, concurrency = 1 }
    assert(c:access_token())
    -- the album and the first track are answered together, only once both
    -- are in flight: the album's answer comes while the plural call runs
    f:faults { { path = "/v1/", barrier = 2, times = 2 } }
    local req = c:start("album", ALBUM)
    local ids = {}
    for i = 1, 5 do ids[i] = ("%022d"):format(i):gsub("0", "A", 1) end
    local list = assert(c:tracks(ids))
    for i = 1, 5 do assert.equal(ids[i], list[i].id) end
    local album, tracks = f:log_for "/v1/albums/", f:log_for "/v1/tracks/"
    assert.equal(1, #album)
    assert.equal(5, #tracks)
    -- When the album's answer had left the fake before the last track was
    -- asked for, it was waiting on its socket while the plural call ran, so
    -- the call handed it over: done with no poll since start. (The fake's
    -- threads may be scheduled so late under load that it had not.)
    if album[1].answered < tracks[5].arrived then
      assert.is_true(req:done(), "the album's answer came during the plural call, which kept it")
    end
    frames(c, { req }, 10)
    assert.equal(ALBUM, assert(req:result()).id)
    local met = 0
    for _, e in ipairs(f:log_for "/v1/") do met = met + (e.met and 1 or 0) end
    assert.equal(2, met)
  end)

  it("a plural call whose client is closed from on_request ends with kind closed", function()
    local c, n
    n = 0
    c = client { batch = false, concurrency = 2, on_request = function()
      n = n + 1
      if n == 3 then c:close() end
    end }
    local ids = {}
    for i = 1, 8 do ids[i] = ("%022d"):format(i):gsub("0", "A", 1) end
    local v, err = c:tracks(ids)
    assert.is_nil(v)
    assert.equal("closed", err.kind)
    assert.equal(0, c:poll(0.01))
  end)

  it("fetches one token for many started requests", function()
    local c = client()
    local reqs = {}
    for i = 1, 8 do reqs[i] = c:start("track", ID) end
    frames(c, reqs)
    for _, r in ipairs(reqs) do assert(r:result()) end
    assert.equal(1, #f:log_for("/api/token"))
  end)

  it("gives errors as result, not raised", function()
    local c = client()
    local req = c:start("track", "UnknownAAAAAAAAAAAAAAA")
    frames(c, { req })
    local v, err = req:result()
    assert.is_nil(v)
    assert.equal("not_found", err.kind)
    req = c:start("track", "not an id")
    frames(c, { req })
    v, err = req:result()
    assert.is_nil(v)
    assert.equal("invalid_argument", err.kind)
  end)

  it("cancels a request, and a cancelled renewal does not hold up the next", function()
    local c = client { timeout = 5 }
    -- the cancelled renewal's answer waits for a second token request: a
    -- request that waited for that answer instead would wait in vain
    f:faults { { path = "/api/token", barrier = 2, times = 2 } }
    local req = c:start("track", ID)
    c:poll(0.05)
    assert.is_false(req:done())
    assert.is_true(req:cancel())
    assert.is_true(req:done())
    local _, err = req:result()
    assert.equal("closed", err.kind)
    assert.is_false(req:cancel())
    local again = c:start("track", ID)
    frames(c, { again }, 10)
    assert.equal(ID, assert(again:result()).id)
    -- a renewal of its own, not a wait for the cancelled one's answer
    assert_concurrent(f:log_for "/api/token", 2)
  end)

  it("shows its sockets to an external loop", function()
    local c = client()
    f:faults { { path = "/api/token", delay = 0.3 } }
    local req = c:start("track", ID)
    c:poll(0.05)
    local info = c:fd_info()
    assert.is_table(info.read)
    assert.is_table(info.write)
    assert.is_true(#info.read + #info.write >= 1)
    assert.is_number(info.read[1] or info.write[1])
    frames(c, { req })
    assert(req:result())
  end)

  it("refuses a name that is not an API method", function()
    local c = client()
    assert.error_matches(function() c:start("poll") end, "client:start needs the name of an API method, got poll")
    assert.error_matches(function() c:start("no_such_method") end,
      "client:start needs the name of an API method, got no_such_method")
  end)

  it("answers closed after close", function()
    local c = client()
    f:faults { { path = "/api/token", delay = 1 } } -- its token request is on the wire at close
    local req = c:start("track", ID)
    c:poll(0.01) -- under way: the token request may be on the wire
    c:close()
    -- the request started before close finishes with kind closed
    assert.is_true(req:done())
    local v, err = req:result()
    assert.is_nil(v)
    assert.equal("closed", err.kind)
    assert.equal(0, c:poll())
    assert.equal(0, c:poll(0.01))
    -- started after close: done at once, closed, and nothing is sent
    local sent = #f:log()
    local late = c:start("track", ID)
    assert.is_true(late:done())
    v, err = late:result()
    assert.is_nil(v)
    assert.equal("closed", err.kind)
    assert.is_false(late:cancel())
    -- blocking calls answer closed too, and close stays idempotent
    v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("closed", err.kind)
    c:close()
    assert.equal(sent, #f:log())
    assert.equal(0, #f:log_for "/v1/") -- the request started before close never went out
  end)
end)
