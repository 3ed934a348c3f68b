-- Every catalog method against the fake: request path and query in its log,
-- answer shaped like the captured fixture.
local cjson = require "cjson"
local spotify = require "spotify"
local core = require "spotify.core"
local fake = require "spec.support.fake"

local function fixture(name)
  local h = assert(io.open("spec/support/fixtures/" .. name, "rb"))
  local v = cjson.decode(h:read "*a")
  h:close()
  return v
end

-- Every non-null field of the fixture is in the answer with the same type.
local function assert_shape(want, got, where)
  where = where or "answer"
  assert.is_table(got, where)
  for k, v in pairs(want) do
    if v ~= cjson.null then
      assert.equal(type(v), type(got[k]), where .. "." .. tostring(k))
    end
  end
end

local function id_of(n) return (("%022d"):format(n):gsub("0", "A", 1)) end
local unpack = table.unpack or unpack -- luacheck: ignore

-- `n` requests in `log`, each answered only once all `n` were in flight
-- together (the fake's barrier): they ran at once. One after another, the
-- first would have waited in vain. (No clock is read.)
local function assert_concurrent(log, n)
  assert.equal(n, #log)
  for i, e in ipairs(log) do
    assert.is_true(e.met, ("request %d of %d answered before all %d were in flight"):format(i, n, n))
  end
end

local ID = {
  track = "4iV5W9uYEdYUVa79Axb7Rh", album = "4EcfbzCtbJDk2wMwhT4D1h", artist = "2CWWgbxApjbyByxBBCvGTm",
  playlist = "1h9q8vXXDl2vHOmwdsuXms", show = "38bS44xjbVVZ3No3ByF1dJ", episode = "512ojhOuo1ktJprKbVcKyQ",
  audiobook = "19Xw49IjNbOCCoebfy3qA9", chapter = "1T07H2V5GwrpPNAH6032ES",
}

describe("catalog", function()
  local f, c
  setup(function() f = fake.start {} end)
  teardown(function() if f then f:stop() end end)
  before_each(function()
    f:reset()
    c = spotify.client(fake.client_opts(f))
  end)

  local function last_api_request()
    local log = f:log_for "/v1/"
    return log[#log]
  end

  local singles = {
    { "track", ID.track, "/v1/tracks/", "track.json" },
    { "album", ID.album, "/v1/albums/", "album.json" },
    { "artist", ID.artist, "/v1/artists/", "artist.json" },
    { "playlist", ID.playlist, "/v1/playlists/", "playlist.json" },
    { "show", ID.show, "/v1/shows/", "show.json" },
    { "episode", ID.episode, "/v1/episodes/", "episode.json" },
    { "audiobook", ID.audiobook, "/v1/audiobooks/", "audiobook.json" },
    { "chapter", ID.chapter, "/v1/chapters/", "chapter.json" },
    { "audio_features", ID.track, "/v1/audio-features/", "audio_features.json" },
    { "category", "toplists", "/v1/browse/categories/", "browse_category.json" },
  }
  for _, case in ipairs(singles) do
    local name, id, prefix, file = case[1], case[2], case[3], case[4]
    it(name .. " GETs " .. prefix .. "{id} and returns the object", function()
      local v = assert(c[name](c, "spotify:" .. (name == "audio_features" and "track" or name) .. ":" .. id))
      assert_shape(fixture(file), v, name)
      assert.equal(id, v.id)
      local e = last_api_request()
      assert.equal(prefix .. id, e.path)
      assert.equal("", e.query)
    end)
  end

  it("user GETs /users/{id}", function()
    local v = assert(c:user("spotify:user:some.user"))
    assert.equal("some.user", v.id)
    assert.equal("/v1/users/some.user", last_api_request().path)
  end)

  local lists = {
    { "markets", {}, "/v1/markets", function(v) assert.equal("AD", v[1]) end },
    { "genre_seeds", {}, "/v1/recommendations/available-genre-seeds",
      function(v) assert.equal(#fixture("genre_seeds.json").genres, #v) end },
    { "artist_top_tracks", { ID.artist }, "/v1/artists/" .. ID.artist .. "/top-tracks",
      function(v) assert_shape(fixture("artist_top_tracks.json").tracks[1], v[1]) end },
    { "artist_related_artists", { ID.artist }, "/v1/artists/" .. ID.artist .. "/related-artists",
      function(v) assert_shape(fixture("artist.json"), v[1]) end },
    { "recommendations", { { seed_genres = { "rock", "pop" }, limit = 2 } }, "/v1/recommendations",
      function(v) assert_shape(fixture("recommendations.json"), v) end, "limit=2&seed_genres=rock,pop" },
  }
  for _, case in ipairs(lists) do
    it(case[1] .. " GETs " .. case[3], function()
      local v = assert(c[case[1]](c, unpack(case[2])))
      case[4](v)
      local e = last_api_request()
      assert.equal(case[3], e.path)
      if case[5] then assert.equal(case[5], e.query) end
    end)
  end

  local paged = {
    { "album_tracks", { ID.album }, "/v1/albums/" .. ID.album .. "/tracks", "album_tracks.json" },
    { "artist_albums", { ID.artist, { include_groups = { "album", "single" } } },
      "/v1/artists/" .. ID.artist .. "/albums", "artist_albums.json", "include_groups=album,single" },
    { "playlist_items", { ID.playlist }, "/v1/playlists/" .. ID.playlist .. "/items", "playlist_items.json" },
    { "show_episodes", { ID.show, { limit = 7 } }, "/v1/shows/" .. ID.show .. "/episodes", "show.json",
      "limit=7", "episodes" },
    { "audiobook_chapters", { ID.audiobook }, "/v1/audiobooks/" .. ID.audiobook .. "/chapters",
      "audiobook_chapters.json" },
    { "user_playlists", { "spotify", { offset = 1 } }, "/v1/users/spotify/playlists", nil, "offset=1" },
    { "categories", { { country = "SE", locale = "sv_SE" } }, "/v1/browse/categories", "browse_categories.json",
      "country=SE&locale=sv_SE", "categories" },
    { "category_playlists", { "toplists" }, "/v1/browse/categories/toplists/playlists" },
    { "featured_playlists", {}, "/v1/browse/featured-playlists" },
    { "new_releases", { { limit = 2 } }, "/v1/browse/new-releases", "new_releases.json", "limit=2", "albums" },
  }
  for _, case in ipairs(paged) do
    it(case[1] .. " GETs " .. case[3] .. " and returns a paging object", function()
      local page = assert(c[case[1]](c, unpack(case[2])))
      assert.is_table(page.items)
      assert.is_number(page.total)
      assert.is_number(page.limit)
      assert.is_table(page.items[1], case[1] .. " has items")
      if case[4] then
        local want = fixture(case[4])
        if case[6] then want = want[case[6]] end
        assert_shape(want.items[1], page.items[1], case[1] .. ".items[1]")
      else
        -- simplified playlists, made by the fake from playlist.json
        assert_shape({ id = "", name = "", owner = {}, tracks = {} }, page.items[1], case[1] .. ".items[1]")
      end
      local e = last_api_request()
      assert.equal(case[3], e.path)
      if case[5] then assert.equal(case[5], e.query) end
    end)
  end

  it("playlist_images GETs /v1/playlists/{id}/images and returns the array of images", function()
    local images = assert(c:playlist_images(ID.playlist))
    assert.is_true(#images >= 1)
    assert_shape(fixture("playlist.json").images[1], images[1], "playlist_images[1]")
    assert.equal("/v1/playlists/" .. ID.playlist .. "/images", last_api_request().path)
    local _, err = c:playlist_images("not an id")
    assert.equal("invalid_argument", err.kind)
  end)

  it("search sends q and type (string or list) and returns paging objects", function()
    local r = assert(c:search("Muse band", { type = { "track", "artist" }, limit = 3, offset = 5 }))
    assert_shape(fixture("search_track_artist_album.json").tracks.items[1], r.tracks.items[1])
    assert.equal(3, #r.artists.items)
    assert.equal("limit=3&offset=5&q=Muse%20band&type=track,artist", last_api_request().query)
    local _, err = c:search("")
    assert.equal("invalid_argument", err.kind)
  end)

  it("applies the client's market and lets opts override it", function()
    local m = spotify.client(fake.client_opts(f, { market = "SE" }))
    assert(m:track(ID.track))
    assert.equal("market=SE", last_api_request().query)
    assert(m:track(ID.track, { market = "US" }))
    assert.equal("market=US", last_api_request().query)
    assert(m:artist(ID.artist))
    assert.equal("", last_api_request().query) -- /artists takes no market
  end)

  it("percent-encodes query values and refuses bad ones", function()
    assert(c:track(ID.track, { fields = "a b&c=d/é" }))
    assert.equal("fields=a%20b%26c%3Dd%2F%C3%A9", last_api_request().query)
    local _, err = c:track(ID.track, { [1] = "x" })
    assert.equal("invalid_argument", err.kind)
    _, err = c:track(ID.track, "market=US")
    assert.equal("invalid_argument", err.kind)
  end)

  -- No captured audio analysis exists among the fixtures, so the fake answers
  -- it as an app without Extended Quota does: 404.
  it("audio_analysis GETs /audio-analysis/{id} and gives Spotify's 404 as not_found", function()
    local v, err = c:audio_analysis("https://open.spotify.com/track/" .. ID.track)
    assert.is_nil(v)
    assert.equal("not_found", err.kind)
    assert.equal(fixture("error_404_resource_not_found.json").error.message, err.message)
    local e = last_api_request()
    assert.equal("/v1/audio-analysis/" .. ID.track, e.path)
    assert.equal("", e.query)
  end)

  it("a single item that does not exist is not_found with Spotify's message", function()
    local v, err = c:album("UnknownAAAAAAAAAAAAAAA")
    assert.is_nil(v)
    assert.equal("not_found", err.kind)
    assert.equal(404, err.status)
    assert.equal("non existing id", err.message)
  end)

  describe("endpoints an app's tier may not serve", function()
    local restricted = {
      { "audio_features", { ID.track }, "/v1/audio-features/" },
      { "audio_features", { { ID.track, id_of(2) } }, "/v1/audio-features" },
      { "recommendations", { { seed_genres = "rock" } }, "/v1/recommendations" },
      { "artist_related_artists", { ID.artist }, "/v1/artists/" .. ID.artist .. "/related-artists" },
      { "featured_playlists", {}, "/v1/browse/featured-playlists" },
      { "category_playlists", { "toplists" }, "/v1/browse/categories/toplists/playlists" },
    }
    for _, case in ipairs(restricted) do
      local name = case[1] .. (type(case[2][1]) == "table" and case[1] == "audio_features" and " (list)" or "")
      it(name .. " works, and gives Spotify's 403 as forbidden and 404 as not_found", function()
        assert(c[case[1]](c, unpack(case[2])))
        for _, answer in ipairs { { 403, "error_403_forbidden.json", "forbidden", "Forbidden" },
          { 404, "error_404_resource_not_found.json", "not_found", fixture("error_404_resource_not_found.json")
            .error.message } } do
          f:faults { { path = case[3], status = answer[1], fixture = answer[2], times = -1 } }
          local v, err = c[case[1]](c, unpack(case[2]))
          assert.is_nil(v)
          assert.equal(answer[3], err.kind)
          assert.equal(answer[1], err.status)
          assert.equal(answer[4], err.message)
        end
      end)
    end

    it("a forbidden audio_features list leaves the other batch endpoints alone", function()
      f:faults { { path = "/v1/audio-features", status = 403, fixture = "error_403_forbidden.json", times = -1 } }
      local _, err = c:audio_features { ID.track, id_of(2) }
      assert.equal("forbidden", err.kind)
      f:faults {}
      assert.equal(2, #assert(c:tracks { ID.track, id_of(2) }))
      local log = f:log_for "/v1/tracks"
      assert.equal(1, #log)
      assert.equal("/v1/tracks", log[1].path)
    end)
  end)

  describe("IDs", function()
    local bad = {
      "", " ", "4iV5W9uYEdYUVa79Axb7R", "4iV5W9uYEdYUVa79Axb7Rh7", "../4iV5W9uYEdYUVa79Axb7",
      "4iV5W9uYEdYUVa79Axb7R/", "4iV5W9uYEdYUVa79Axb%2F", "4iV5W9uYEdYUVa79Axb7R?", "4iV5W9uYEdYUVa79Axb7R#",
      "4iV5W9uYEdYUVa79 xb7Rh", "spotify:album:4iV5W9uYEdYUVa79Axb7Rh",
      "https://open.spotify.com/album/4iV5W9uYEdYUVa79Axb7Rh",
      "https://evil.example/track/4iV5W9uYEdYUVa79Axb7Rh", ("A"):rep(600), 42, true, {},
    }
    for _, v in ipairs(bad) do
      local shown = type(v) == "string" and ("%q"):format(v:sub(1, 60)) or type(v)
      it("refuses " .. shown .. " before any request", function()
        local r, err = c:track(v)
        assert.is_nil(r)
        assert.equal("invalid_argument", err.kind)
        assert.equal(0, #f:log())
      end)
    end

    it("takes bare IDs, URIs and open.spotify.com URLs", function()
      for _, v in ipairs { ID.track, "spotify:track:" .. ID.track,
        "https://open.spotify.com/track/" .. ID.track .. "?si=abc123",
        "https://open.spotify.com/intl-de/track/" .. ID.track } do
        assert.equal(ID.track, assert(c:track(v)).id)
      end
    end)

    it("refuses a bad ID inside a list, naming its position", function()
      local r, err = c:tracks { ID.track, "nope" }
      assert.is_nil(r)
      assert.equal("invalid_argument", err.kind)
      assert.matches("position 2", err.message)
      assert.equal(0, #f:log())
    end)
  end)

  describe("plural methods", function()
    local function ids(n, unknown_at)
      local list = {}
      for i = 1, n do list[i] = i == unknown_at and "UnknownAAAAAAAAAAAAAAA" or id_of(i) end
      return list
    end

    for _, n in ipairs { 0, 1, 49, 50, 51, 120 } do
      it(("tracks with %d IDs: %d request(s), one array in input order"):format(n, math.ceil(n / 50)), function()
        local list = ids(n, n > 2 and 2 or nil)
        local out = assert(c:tracks(list))
        assert.equal(n, #out)
        for i = 1, n do
          if i == 2 and n > 2 then
            assert.equal(spotify.null, out[i])
          else
            assert.equal(list[i], out[i].id)
          end
        end
        local batches = f:log_for "/v1/tracks"
        assert.equal(math.ceil(n / 50), #batches)
        for _, e in ipairs(batches) do
          local count = select(2, e.query:gsub(",", "")) + 1
          assert.is_true(count <= 50)
        end
      end)
    end

    it("splits at Spotify's official limits: albums at 20, shows and audiobooks at 50, audio features at 100",
      function()
      for _, case in ipairs { { "albums", "/v1/albums", 20 }, { "shows", "/v1/shows", 50 },
        { "audiobooks", "/v1/audiobooks", 50 }, { "audio_features", "/v1/audio-features", 100 } } do
        local n = 2 * case[3] + 1
        local out = assert(c[case[1]](c, ids(n)))
        assert.equal(n, #out)
        local batches = 0
        for _, e in ipairs(f:log_for(case[2])) do
          if e.path == case[2] then batches = batches + 1 end
        end
        assert.equal(3, batches)
      end
    end)

    it("runs the batches of 120 IDs concurrently", function()
      assert(c:access_token())
      f:faults { { path = "/v1/tracks", barrier = 3, times = -1 } }
      local out = assert(c:tracks(ids(120)))
      assert.equal(120, #out)
      assert_concurrent(f:log_for "/v1/tracks", 3)
    end)

    it("runs the single requests of the fallback concurrently too", function()
      assert(c:access_token())
      f:config { no_batch = true }
      f:faults { { path = "/v1/albums/", barrier = 8, times = -1 } }
      local out = assert(c:albums(ids(8)))
      assert.equal(8, #out)
      assert_concurrent(f:log_for "/v1/albums/", 8)
    end)

    it("runs batches inside a started request without blocking", function()
      f:faults { { path = "/v1/tracks", delay = 0.3, times = -1 } }
      local req = c:start("tracks", ids(120, 7))
      assert.is_false(req:done())
      local give_up = core.now() + 5
      while not req:done() and core.now() < give_up do c:poll(0.01) end
      local out = assert(req:result())
      assert.equal(120, #out)
      assert.equal(spotify.null, out[7])
      assert.equal(id_of(120), out[120].id)
    end)

    it("keeps at most `concurrency` requests in flight", function()
      local two = spotify.client(fake.client_opts(f, { batch = false, concurrency = 2 }))
      assert(two:access_token())
      local delay = 0.5
      f:faults { { path = "/v1/artists/", delay = delay, times = -1 } }
      assert.equal(4, #assert(two:artists(ids(4))))
      -- The fake logs a request when it arrives and answers `delay` later.
      -- Two at once: the first two arrive before either answer, and so do
      -- the last two; never more: the third arrives only after an answer.
      local t = {}
      for i, e in ipairs(f:log_for "/v1/artists/") do t[i] = e.time end
      table.sort(t)
      assert.equal(4, #t)
      assert.is_true(t[2] - t[1] < delay, "the first two did not run at once")
      assert.is_true(t[4] - t[3] < delay, "the last two did not run at once")
      assert.is_true(t[3] - t[1] >= delay - 0.01, "a third started before an answer")
      assert.is_true(t[4] - t[2] >= delay - 0.01, "a fourth started before the second answer")
    end)

    it("falls back the same way when batch endpoints answer 404", function()
      f:faults { { path = "/v1/albums", query_contains = "ids=", status = 404, times = -1 } }
      local out = assert(c:albums(ids(3, 2)))
      assert.equal(spotify.null, out[2])
      assert.equal(id_of(3), out[3].id)
      assert(c:shows(ids(2)))
      local paths = {} -- no /v1/shows?ids=: remembered for every batch endpoint
      for _, e in ipairs(f:log_for "/v1/shows") do paths[#paths + 1] = e.path end
      table.sort(paths)
      assert.same({ "/v1/shows/" .. id_of(1), "/v1/shows/" .. id_of(2) }, paths)
    end)

    it("a batch 404 with every single item 404 too is not_found, not a list of nulls", function()
      f:faults { { path = "/v1/audio-features", status = 404, fixture = "error_404_resource_not_found.json",
        times = -1 } }
      local out, err = c:audio_features(ids(3))
      assert.is_nil(out)
      assert.equal("not_found", err.kind)
    end)

    it("falls back to single requests when batch endpoints answer 403, once per client", function()
      f:config { no_batch = true }
      local list = ids(5, 3)
      local out = assert(c:tracks(list))
      assert.equal(5, #out)
      assert.equal(spotify.null, out[3])
      assert.equal(list[5], out[5].id)
      local batch_calls = 0
      for _, e in ipairs(f:log_for "/v1/tracks") do
        if e.path == "/v1/tracks" then batch_calls = batch_calls + 1 end
      end
      assert.equal(1, batch_calls)
      assert(c:tracks(list))
      batch_calls = 0
      for _, e in ipairs(f:log_for "/v1/tracks") do
        if e.path == "/v1/tracks" then batch_calls = batch_calls + 1 end
      end
      assert.equal(1, batch_calls, "the fallback is remembered")
    end)

    it("starts with single requests when batch = false", function()
      local nb = spotify.client(fake.client_opts(f, { batch = false }))
      assert.equal(3, #assert(nb:artists(ids(3))))
      assert.equal(3, #f:log_for "/v1/artists/")
    end)

    it("audio_features takes one ID or a list", function()
      local one = assert(c:audio_features(ID.track))
      assert.equal(ID.track, one.id)
      local many = assert(c:audio_features { ID.track, id_of(7) })
      assert.equal(2, #many)
      assert.equal(id_of(7), many[2].id)
    end)
  end)

  describe("every plural endpoint", function()
    local plurals = {
      { "tracks", "track", "/v1/tracks", "track.json", 50, true },
      { "albums", "album", "/v1/albums", "album.json", 20, true },
      { "artists", "artist", "/v1/artists", "artist.json", 50, false },
      { "shows", "show", "/v1/shows", "show.json", 50, true },
      { "episodes", "episode", "/v1/episodes", "episode.json", 50, true },
      { "audiobooks", "audiobook", "/v1/audiobooks", "audiobook.json", 50, true },
      { "chapters", "chapter", "/v1/chapters", "chapter.json", 50, true },
      { "audio_features", "track", "/v1/audio-features", "audio_features.json", 100, false },
    }
    for _, case in ipairs(plurals) do
      local name, kind, path, file, max, market = unpack(case)
      it(("%s GETs %s?ids= in requests of %d and returns the objects in input order"):format(name, path, max),
        function()
          local m = spotify.client(fake.client_opts(f, { market = "SE" }))
          local list, chunks = {}, { {}, {} }
          for i = 1, max + 1 do
            list[i] = id_of(i)
            local chunk = chunks[i <= max and 1 or 2]
            chunk[#chunk + 1] = list[i]
          end
          list[1] = "spotify:" .. kind .. ":" .. list[1] -- URIs and URLs are taken in lists too
          list[max + 1] = "https://open.spotify.com/" .. kind .. "/" .. list[max + 1] .. "?si=x"
          local out = assert(m[name](m, list))
          assert.equal(max + 1, #out)
          assert_shape(fixture(file), out[1], name .. "[1]")
          for i = 1, max + 1 do assert.equal(id_of(i), out[i].id) end
          local want, got = {}, {}
          for i, chunk in ipairs(chunks) do
            want[i] = "ids=" .. table.concat(chunk, ",") .. (market and "&market=SE" or "")
          end
          for _, e in ipairs(f:log_for(path)) do
            assert.equal(path, e.path)
            got[#got + 1] = e.query
          end
          table.sort(got) -- the two requests run at once: any order
          assert.same(want, got)
        end)
    end
  end)

  describe("bad IDs of every kind", function()
    local forms = {
      function(id) return "../" .. id end,
      function(id) return id:sub(1, 10) .. "%2F" .. id:sub(14) end,
      function(id) return id:sub(1, 21) .. "?" end,
      function(id) return id .. "?market=US" end,
      function(id) return id:sub(1, 21) .. "#" end,
      function(id) return id:sub(1, 10) .. " " .. id:sub(12) end,
      function(id) return " " .. id end,
      function(id) return id .. "/../../me" end,
      function(id) return id:rep(30) end,
      function(id) return id .. "\0" end,
      function(id) return "spotify:" .. id end,
    }
    local calls = {
      { "track", ID.track, "album" }, { "album", ID.album, "track" }, { "artist", ID.artist, "track" },
      { "playlist", ID.playlist, "album" }, { "playlist_items", ID.playlist, "track" },
      { "show", ID.show, "episode" }, { "episode", ID.episode, "show" }, { "audiobook", ID.audiobook, "chapter" },
      { "chapter", ID.chapter, "audiobook" }, { "album_tracks", ID.album, "artist" },
      { "artist_albums", ID.artist, "album" }, { "audio_analysis", ID.track, "episode" },
      { "user", "some.user", "artist" }, { "user_playlists", "some_user-1", "playlist" },
      { "category", "toplists", "track" }, { "category_playlists", "toplists", "album" },
      { "tracks", ID.track, "album", true }, { "albums", ID.album, "track", true },
      { "episodes", ID.episode, "show", true }, { "audio_features", ID.track, "album", true },
    }
    for _, case in ipairs(calls) do
      local name, good, other_kind, plural = unpack(case)
      it(name .. " refuses every bad form and the wrong kind, sending nothing", function()
        local inputs = { ("spotify:%s:%s"):format(other_kind, ID[other_kind] or ID.track),
          ("https://open.spotify.com/%s/%s"):format(other_kind, ID[other_kind] or ID.track),
          ".", "..", "" }
        for _, form in ipairs(forms) do inputs[#inputs + 1] = form(good) end
        for _, bad in ipairs(inputs) do
          local v, err
          if plural then
            v, err = c[name](c, { good, bad })
          else
            v, err = c[name](c, bad)
          end
          assert.is_nil(v, ("%q"):format(bad))
          assert.equal("invalid_argument", err.kind, ("%q"):format(bad))
        end
        assert.equal(0, #f:log())
      end)
    end
  end)

  describe("playlist_items", function()
    it("stays on /items after an unknown playlist fails on both paths", function()
      local _, err = c:playlist_items("UnknownAAAAAAAAAAAAAAA")
      assert.equal("not_found", err.kind)
      assert(c:playlist_items(ID.playlist))
      local log = f:log_for "/v1/playlists/"
      assert.equal(3, #log)
      assert.equal("/v1/playlists/UnknownAAAAAAAAAAAAAAA/items", log[1].path)
      assert.equal("/v1/playlists/UnknownAAAAAAAAAAAAAAA/tracks", log[2].path)
      assert.equal("/v1/playlists/" .. ID.playlist .. "/items", log[3].path)
    end)


    it("falls back to /tracks where /items is not served, and remembers it", function()
      f:config { no_items = true }
      assert(c:playlist_items(ID.playlist))
      assert(c:playlist_items(ID.playlist))
      local paths = {}
      for _, e in ipairs(f:log_for "/v1/playlists/") do paths[#paths + 1] = e.path end
      assert.same({ "/v1/playlists/" .. ID.playlist .. "/items", "/v1/playlists/" .. ID.playlist .. "/tracks",
        "/v1/playlists/" .. ID.playlist .. "/tracks" }, paths)
    end)
  end)
end)
