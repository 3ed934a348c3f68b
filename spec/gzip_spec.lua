-- Compressed answers with the libcurl driver: it asks for them, the same
-- values come out, fewer bytes cross the wire, and a gzip bomb or a broken
-- gzip stream is an error of a documented kind. The nginx driver's side is
-- in nginx_spec.lua ("gzip").
local spotify = require "spotify"
local fake = require "spec.support.fake"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

describe("gzip with libcurl", function()
  local f, c
  setup(function() f = fake.start() end)
  teardown(function() if f then f:stop() end end)
  before_each(function()
    f:faults {}
    f:config { gzip = false }
  end)
  after_each(function()
    if c then c:close() end
    c = nil
  end)

  it("asks for compressed answers", function()
    c = spotify.client(fake.client_opts(f))
    local mark = #f:log()
    assert(c:track(ID))
    local log = f:log_for("/v1/tracks/", mark)
    assert.equal(1, #log)
    assert.equal("gzip", log[1].accept_encoding) -- as the nginx driver asks
  end)

  it("gets the same values over fewer bytes", function()
    c = spotify.client(fake.client_opts(f))
    local mark = #f:log()
    local want_search = assert(c:search("roadhouse blues", { type = { "track", "artist" }, limit = 10 }))
    local want_track = assert(c:track(ID))
    f:config { gzip = true }
    local got_search = assert(c:search("roadhouse blues", { type = { "track", "artist" }, limit = 10 }))
    local got_track = assert(c:track(ID))
    assert.same(want_search, got_search)
    assert.same(want_track, got_track)
    local search, track = f:log_for("/v1/search", mark), f:log_for("/v1/tracks/", mark)
    assert.equal(2, #search)
    assert.equal(2, #track)
    assert.is_not.equal("gzip", search[1].content_encoding)
    assert.equal("gzip", search[2].content_encoding)
    assert.equal("gzip", track[2].content_encoding)
    assert.is_true(search[2].sent * 4 < search[1].sent, search[2].sent .. " vs " .. search[1].sent)
    assert.is_true(track[2].sent * 2 < track[1].sent, track[2].sent .. " vs " .. track[1].sent)
  end)

  it("bounds the inflated size by max_body: a gzip bomb is too big, not memory", function()
    c = spotify.client(fake.client_opts(f, { max_body = 1024 * 1024, max_retries = 0 }))
    f:faults { { path = "/v1/tracks/", action = "gzip_bomb", size = 256 * 1024 * 1024, times = 1 } }
    local mark = #f:log()
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.matches("larger than max_body", err.message)
    local log = f:log_for("/v1/tracks/", mark)
    assert.equal(1, #log)
    assert.is_true(log[1].sent < 1024 * 1024) -- small on the wire, huge inflated
  end)

  it("reports a truncated gzip stream as a body that is not the JSON expected", function()
    -- libcurl inflates what came and does not flag the missing end: the
    -- half answer fails to decode (the nginx driver says "truncated").
    c = spotify.client(fake.client_opts(f, { max_retries = 0 }))
    f:faults { { path = "/v1/tracks/", action = "gzip_truncated", times = 1 } }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.matches("end of string", err.message)
  end)

  it("reports an unknown content encoding as a network error", function()
    c = spotify.client(fake.client_opts(f, { max_retries = 0 }))
    f:faults { { path = "/v1/tracks/", action = "encoding", encoding = "zstd-x", times = 1 } }
    local v, err = c:track(ID)
    assert.is_nil(v)
    assert.equal("network", err.kind)
  end)
end)
