-- The fake Spotify in demo mode (`make demo`): objects vary by ID and every
-- paging object's total is what its pages really list. The specs that
-- compare the fake with the fixtures use the default mode, left as it was.
local fake = require "spec.support.fake"
local spotify = require "spotify"

local PLAYLIST = "3cEYpjA9oz9GiPac4AsH4n"

describe("the demo fake", function()
  local f, client

  setup(function()
    f = fake.start { demo = true }
    client = spotify.client(fake.client_opts(f))
  end)
  teardown(function()
    if client then client:close() end
    if f then f:stop() end
  end)

  it("answers each captured track by its own ID and other IDs with varied tracks", function()
    local ids = { "0eGsygTp906u18L0Oimnem", "4iV5W9uYEdYUVa79Axb7Rh", "3lPr8ghNDBLc2uZovNyLs9" }
    for i = 1, 9 do ids[#ids + 1] = ("Demo%018d"):format(i) end
    local tracks = assert(client:tracks(ids))
    assert.equal("Mr. Brightside", tracks[1].name)
    assert.equal("Austerity", tracks[2].name)
    assert.equal("Supermassive Black Hole", tracks[3].name)
    local names = {}
    for i, t in ipairs(tracks) do
      assert.equal(ids[i], t.id)
      assert.equal("spotify:track:" .. ids[i], t.uri)
      names[t.name] = true
    end
    local distinct = 0
    for _ in pairs(names) do distinct = distinct + 1 end
    assert.is_true(distinct >= 6, "only " .. distinct .. " names among " .. #ids .. " tracks")
    -- the same ID gets the same track on every call
    assert.equal(tracks[5].name, assert(client:track(ids[5])).name)
  end)

  it("lists as many playlist items as the playlist says it has", function()
    local playlist = assert(client:playlist(PLAYLIST))
    local items = assert(client:all(assert(client:playlist_items(PLAYLIST, { limit = 3 }))))
    assert.equal(playlist.tracks.total, #items)
    assert.equal(#playlist.tracks.items, #items)
    for i, entry in ipairs(items) do assert.equal(playlist.tracks.items[i].track.id, entry.track.id) end
  end)

  it("gives every paging object a total its pages reach, without repeats", function()
    local show = assert(client:show "38bS44xjbVVZ3No3ByF1dJ")
    assert.equal(show.total_episodes, show.episodes.total)
    for _, case in ipairs {
      { "album_tracks", "4EcfbzCtbJDk2wMwhT4D1h" },
      { "artist_albums", "0TnOYISbd1XYRBk9myaseg" },
      { "show_episodes", "38bS44xjbVVZ3No3ByF1dJ", show.total_episodes },
      { "audiobook_chapters", "7iHfbu1YPACw6oZPAFJtqe" },
      { "user_playlists", "spotify" },
    } do
      local first = assert(client[case[1]](client, case[2], { limit = 7 }))
      local list = assert(client:all(first))
      assert.equal(first.total, #list, case[1])
      if case[3] then assert.equal(case[3], #list, case[1]) end
      local seen = {}
      for _, item in ipairs(list) do
        assert.is_nil(seen[item.id], case[1] .. " repeats " .. tostring(item.id))
        seen[item.id] = true
      end
    end
    local res = assert(client:search("Muse", { type = { "track", "artist" }, limit = 4 }))
    assert.equal(#assert(client:all(res.tracks)), res.tracks.total)
    assert.equal(#assert(client:all(res.artists)), res.artists.total)
  end)

  it("is off by default: the fixtures' totals stay", function()
    local plain = fake.start {}
    local c = spotify.client(fake.client_opts(plain))
    local first = assert(c:playlist_items(PLAYLIST))
    local playlist = assert(c:playlist(PLAYLIST))
    assert.equal(2, first.total)
    assert.equal(4, playlist.tracks.total)
    local a, b = assert(c:track "Demo000000000000000001"), assert(c:track "Demo000000000000000002")
    assert.equal(a.name, b.name)
    c:close()
    plain:stop()
  end)
end)
