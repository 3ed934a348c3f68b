-- client:pages, client:items and client:all over the fake's paging objects.
local spotify = require "spotify"
local core = require "spotify.core"
local fake = require "spec.support.fake"

local PLAYLIST = "1h9q8vXXDl2vHOmwdsuXms"

describe("pages", function()
  local f, c
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function()
    f:reset()
    f:config { totals = { playlist_items = 230 } }
    c = spotify.client(fake.client_opts(f))
  end)

  it("walks 230 playlist items with items() in three pages", function()
    local first = assert(c:playlist_items(PLAYLIST))
    assert.equal(230, first.total)
    local n = 0
    for item in c:items(first) do
      n = n + 1
      assert.is_table(item.track)
    end
    assert.equal(230, n)
    assert.equal(3, #f:log_for("/v1/playlists/"))
  end)

  it("steps with next() and previous(), nil with no error at either end", function()
    local first = assert(c:playlist_items(PLAYLIST, { limit = 100 }))
    local before, err0 = c:previous(first)
    assert.is_nil(before)
    assert.is_nil(err0)
    local second = assert(c:next(first))
    assert.equal(100, second.offset)
    local third = assert(c:next(second))
    assert.equal(30, #third.items)
    local after, err = c:next(third)
    assert.is_nil(after)
    assert.is_nil(err)
    local back = assert(c:previous(third))
    assert.equal(100, back.offset)
    assert.equal(second.items[1].track.id, back.items[1].track.id)
    assert.equal(4, #f:log_for("/v1/playlists/"))
  end)

  it("next() follows the wrapped pages of a search and hands failures on", function()
    local res = assert(c:search("muse", { type = { "track", "artist" }, limit = 2 }))
    local page = assert(c:next(res.tracks))
    assert.equal(2, page.offset)
    assert.equal("track", page.items[1].type)
    local artists = assert(c:next(res.artists))
    assert.equal("artist", artists.items[1].type)
    local _, err = c:next(c:album_tracks("UnknownAAAAAAAAAAAAAAA"))
    assert.equal("not_found", err.kind)
    local _, bad = c:next({ nope = true })
    assert.equal("invalid_argument", bad.kind)
  end)

  it("get() takes a page's full next URL, and only below api_base", function()
    local first = assert(c:playlist_items(PLAYLIST, { limit = 100 }))
    local second = assert(c:get(first.next))
    assert.equal(100, second.offset)
    local _, err = c:get("https://elsewhere.example/v1/tracks/x")
    assert.equal("invalid_argument", err.kind)
    local _, err2 = c:get(f.api_base .. "evil/tracks")
    assert.equal("invalid_argument", err2.kind)
  end)

  it("gives page after page with pages()", function()
    local sizes = {}
    for page in c:pages(c:playlist_items(PLAYLIST, { limit = 100 })) do sizes[#sizes + 1] = #page.items end
    assert.same({ 100, 100, 30 }, sizes)
  end)

  it("collects with all(), stopping at max without fetching more pages", function()
    local list = assert(c:all(c:playlist_items(PLAYLIST), { max = 150 }))
    assert.equal(150, #list)
    assert.equal(2, #f:log_for("/v1/playlists/"))
    f:reset()
    f:config { totals = { playlist_items = 230 } }
    assert.equal(230, #assert(c:all(c:playlist_items(PLAYLIST))))
    assert.equal(0, #assert(c:all(c:playlist_items(PLAYLIST), { max = 0 })))
  end)

  it("raises in a for loop and returns nil, err from all when a later page fails", function()
    local first = assert(c:playlist_items(PLAYLIST))
    f:faults { { path = "/v1/playlists/", status = 404, times = -1 } }
    local seen = 0
    local ok, err = pcall(function()
      for _ in c:items(first) do seen = seen + 1 end
    end)
    assert.is_false(ok)
    assert.equal(100, seen)
    assert.equal("not_found", err.kind)
    local list, aerr = c:all(first)
    assert.is_nil(list)
    assert.equal("not_found", aerr.kind)
  end)

  it("hands a failed first request's error straight through", function()
    local _, err = c:all(c:playlist_items("UnknownAAAAAAAAAAAAAAA"))
    assert.equal("not_found", err.kind)
    assert.has_error(function() for _ in c:items(c:playlist_items("UnknownAAAAAAAAAAAAAAA")) do end end)
    assert.has_error(function() for _ in c:items({ no = "page" }) do end end)
  end)

  it("walks the paging objects inside a search result", function()
    f:config { totals = { search = 23 } }
    local r = assert(c:search("Muse", { limit = 10 }))
    local n = 0
    for _ in c:items(r.tracks) do n = n + 1 end
    assert.equal(23, n)
    local searches = f:log_for("/v1/search")
    assert.equal(3, #searches)
    assert.matches("offset=20", searches[3].query)
  end)

  it("walks one type's pages of a search for several types", function()
    f:config { totals = { search = 23 } }
    local r = assert(c:search("Muse", { type = { "track", "artist", "album" }, limit = 10 }))
    local kinds = { artists = "artist", albums = "album", tracks = "track" }
    for key, kind in pairs(kinds) do
      local list = assert(c:all(r[key]))
      assert.equal(23, #list, key)
      for _, item in ipairs(list) do assert.equal(kind, item.type) end
      local n = 0
      for item in c:items(r[key]) do
        n = n + 1
        assert.equal(kind, item.type)
      end
      assert.equal(23, n)
    end
  end)

  it("pages through the /tracks fallback of playlist_items", function()
    f:config { no_items = true }
    local list = assert(c:all(c:playlist_items(PLAYLIST, { limit = 50 }), { max = 160 }))
    assert.equal(160, #list)
    local log = f:log_for("/v1/playlists/")
    assert.equal(5, #log) -- /items 404, then /tracks at offsets 0, 50, 100, 150
    assert.equal("/v1/playlists/" .. PLAYLIST .. "/items", log[1].path)
    for i = 2, 5 do
      assert.equal("/v1/playlists/" .. PLAYLIST .. "/tracks", log[i].path)
      if i > 2 then assert.matches("offset=" .. (i - 2) * 50, log[i].query) end
    end
  end)

  it("all(failed_call(), {max = n}) is nil, err though Lua drops the call's err", function()
    local list, err = c:all(c:playlist_items("UnknownAAAAAAAAAAAAAAA"), { max = 5 })
    assert.is_nil(list)
    assert.equal("invalid_argument", err.kind)
    local _, merr = c:all(c:playlist_items(PLAYLIST), { max = -1 })
    assert.equal("invalid_argument", merr.kind)
  end)

  it("a later page on a closed client raises closed in a loop and is nil, err from all", function()
    local first = assert(c:playlist_items(PLAYLIST))
    c:close()
    local ok, err = pcall(function() for _ in c:items(first) do end end)
    assert.is_false(ok)
    assert.equal("closed", err.kind)
    local list, aerr = c:all(first)
    assert.is_nil(list)
    assert.equal("closed", aerr.kind)
  end)

  it("unwraps categories and new releases", function()
    f:config { totals = { categories = 45, new_releases = 31 } }
    assert.equal(45, #assert(c:all(c:categories { limit = 20 })))
    local albums = assert(c:all(c:new_releases { limit = 10 }))
    assert.equal(31, #albums)
    assert.equal("album", albums[31].type)
  end)

  it("never sends the token to a next link outside api_base", function()
    local page = assert(c:playlist_items(PLAYLIST))
    page.next = "http://evil.example/v1/steal"
    local list, err = c:all(page)
    assert.is_nil(list)
    assert.equal("invalid_argument", err.kind)
  end)

  it("pages inside a started request (a coroutine that yields)", function()
    local req = c:start("all", c:playlist_items(PLAYLIST), { max = 220 })
    local give_up = core.now() + 5
    while not req:done() and core.now() < give_up do c:poll(0.01) end
    assert.equal(220, #assert(req:result()))
  end)
end)
