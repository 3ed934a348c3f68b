-- bin/spotify run as a separate process against the fake Spotify: text and
-- --json output, page walking with progress, errors and exit codes; and the
-- examples that `make demo` runs.
local cjson = require "cjson"
local fake = require "spec.support.fake"

local TRACK = "4iV5W9uYEdYUVa79Axb7Rh"
local ALBUM = "4EcfbzCtbJDk2wMwhT4D1h"
local PLAYLIST = "3cEYpjA9oz9GiPac4AsH4n"
local UNKNOWN = "UnknownAAAAAAAAAAAAAAA"

-- The interpreter running this spec runs the command too, so each
-- interpreter tests the CLI on its own build (SPOTIFY_BUILD is inherited).
local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read "*a"
  f:close()
  return s
end

local function lines(s)
  local out = {}
  for l in s:gmatch "([^\n]*)\n" do out[#out + 1] = l end
  return out
end

describe("spotify command", function()
  local f, dir

  setup(function()
    f = fake.start {}
    dir = fake.workdir()
  end)
  teardown(function() if f then f:stop() end end)
  before_each(function() f:reset() end)

  --- Run bin/spotify (or `script`) with `args` and the fake's settings
  -- plus `env`. Returns stdout, stderr, exit code.
  local function run(args, env, script)
    local vars = {
      SPOTIFY_CLIENT_ID = "test-id", SPOTIFY_CLIENT_SECRET = "test-secret",
      SPOTIFY_API_BASE = f.api_base, SPOTIFY_TOKEN_URL = f.token_url,
      SPOTIFY_ACCESS_TOKEN = "", SPOTIFY_TOKEN_CACHE = "", SPOTIFY_MARKET = "",
    }
    for k, v in pairs(env or {}) do vars[k] = v end
    local assigns = {}
    for k, v in pairs(vars) do assigns[#assigns + 1] = k .. "=" .. quote(v) end
    local words = {}
    for i, a in ipairs(args) do words[i] = quote(a) end
    local out, err = dir .. "/cli.out", dir .. "/cli.err"
    local cmd = ("env %s %s %s %s >%s 2>%s; echo $?"):format(table.concat(assigns, " "), LUA, script or "bin/spotify",
      table.concat(words, " "), out, err)
    local p = assert(io.popen(cmd))
    local code = tonumber(p:read "*a")
    p:close()
    return slurp(out), slurp(err), code
  end

  --- The value column of each "Label   value" line, checking they line up.
  local function fields(text)
    local out, column = {}, nil
    for _, l in ipairs(lines(text)) do
      if l == "" then break end
      local label, gap, value = l:match "^(%S.-)(%s%s+)(%S.*)$"
      assert(label, "not a field line: " .. l)
      local at = #label + #gap
      column = column or at
      assert.equal(column, at, "value not aligned: " .. l)
      out[label] = value
    end
    return out
  end

  describe("looks up", function()
    it("a track as aligned text, by ID, URI or URL", function()
      local url = "https://open.spotify.com/track/" .. TRACK .. "?si=x"
      for _, ref in ipairs { TRACK, "spotify:track:" .. TRACK, url } do
        local out, err, code = run { "track", ref }
        assert.equal(0, code, err)
        assert.equal("", err)
        local t = fields(out)
        assert.equal("Austerity", t.Track)
        assert.equal("Katatonia", t.Artists)
        assert.equal("3:41", t.Duration)
        assert.equal("spotify:track:" .. TRACK, t.URI)
      end
    end)

    it("a track as JSON with --json", function()
      local out, err, code = run { "track", TRACK, "--json" }
      assert.equal(0, code, err)
      assert.is_nil(out:find("\\/", 1, true), "URLs keep their slashes unescaped")
      assert.matches("\n$", out)
      local t = cjson.decode(out)
      assert.equal(TRACK, t.id)
      assert.equal("Austerity", t.name)
      assert.equal(221200, t.duration_ms)
    end)

    it("an album with its tracks numbered", function()
      local out, err, code = run { "album", "spotify:album:" .. ALBUM }
      assert.equal(0, code, err)
      local head, list = out:match "^(.-\n)\n(.*)$"
      assert.equal("Sky Void of Stars", fields(head).Album)
      local rows = lines(list)
      assert.equal(12, #rows) -- header + 11 tracks
      assert.matches("^#%s+Name%s+Time%s+ID$", rows[1])
      assert.matches("^11%s+Absconder %(Bonus Track%)%s+4:48%s+%w+$", rows[12])
    end)

    for _, case in ipairs {
      { "artist", "0TnOYISbd1XYRBk9myaseg", "Artist", "Katatonia" },
      { "playlist", PLAYLIST, "Playlist", "Rap RU" },
      { "show", "38bS44xjbVVZ3No3ByF1dJ", "Show", "Vetenskapsradion Historia" },
      { "episode", "512ojhOuo1ktJprKbVcKyQ", "Duration", "1:10:59" },
      { "audiobook", "7iHfbu1YPACw6oZPAFJtqe", "Authors", "Blake Pierce" },
    } do
      it("a " .. case[1], function()
        local out, err, code = run { case[1], case[2] }
        assert.equal(0, code, err)
        assert.equal(case[4], fields(out)[case[3]])
      end)
    end

    it("with the market from --market", function()
      local _, err, code = run { "track", TRACK, "--market", "SE" }
      assert.equal(0, code, err)
      assert.matches("market=SE", f:log_for("/v1/tracks")[1].query)
    end)
  end)

  describe("search", function()
    it("prints a table per type and passes --type and --limit", function()
      local out, err, code = run { "search", "Muse", "--type", "track,artist", "--limit", "3" }
      assert.equal(0, code, err)
      local rows = lines(out)
      assert.equal("Tracks: 3 of 11113", rows[1])
      assert.matches("^#%s+Name%s+Artists%s+Album%s+Time%s+ID$", rows[2])
      assert.matches("^1%s+Supermassive Black Hole%s+Muse%s+", rows[3])
      assert.equal("", rows[6])
      assert.equal("Artists: 3 of 171", rows[7])
      local q = f:log_for("/v1/search")[1].query
      assert.matches("limit=3", q)
      assert.matches("type=track,artist", q, 1, true)
    end)

    it("joins several words into one query", function()
      local _, err, code = run { "search", "daft", "punk", "--limit", "2" }
      assert.equal(0, code, err)
      assert.matches("q=daft%%20punk", f:log_for("/v1/search")[1].query)
    end)

    it("gives Spotify's answer with --json", function()
      local out, err, code = run { "search", "Muse", "--json", "--type=album" }
      assert.equal(0, code, err)
      local res = cjson.decode(out)
      assert.equal(1032, res.albums.total)
      assert.is_nil(res.tracks)
    end)
  end)

  describe("items", function()
    it("walks every page up to --max with a progress line on stderr", function()
      f:config { totals = { album_tracks = 120 } }
      local out, err, code = run { "items", "album", ALBUM, "--max", "70" }
      assert.equal(0, code, err)
      local rows = lines(out)
      assert.equal(71, #rows)
      assert.matches("^70%s", rows[71])
      assert.equal("fetched 50 of 70 items\nfetched 70 of 70 items\n", err)
      local reqs = f:log_for("/v1/albums/" .. ALBUM .. "/tracks")
      assert.equal(2, #reqs)
      assert.matches("limit=50", reqs[1].query)
    end)

    it("is quiet with --quiet and gives a JSON array with --json", function()
      f:config { totals = { playlist_items = 130 } }
      local out, err, code = run { "items", "playlist", PLAYLIST, "--json", "--quiet" }
      assert.equal(0, code, err)
      assert.equal("", err)
      local list = cjson.decode(out)
      assert.equal(130, #list)
      assert.equal("Typhoons", list[1].track.name)
    end)

    it("stays silent on stderr for a single page", function()
      local out, err, code = run { "items", "playlist", PLAYLIST }
      assert.equal(0, code, err)
      assert.equal("", err)
      assert.matches("Typhoons%s+Royal Blood", out)
    end)
  end)

  describe("token", function()
    it("prints the expiry and never the token", function()
      local out, err, code = run { "token" }
      assert.equal(0, code, err)
      local t = fields(out)
      assert.matches("^%d+ s$", t["Expires in"])
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", t["Expires at"])
      assert.not_matches("tok%-", out)
      local json = cjson.decode((run { "token", "--json" }))
      assert.is_nil(json.access_token)
      assert.is_true(json.expires_in > 3000)
    end)

    it("prints the token itself with --show", function()
      local out, err, code = run { "token", "--show" }
      assert.equal(0, code, err)
      assert.matches("^tok%-%d+%-%d+\n$", out)
    end)

    it("keeps the token between runs in SPOTIFY_TOKEN_CACHE", function()
      local cache = dir .. "/cli-token.json"
      os.remove(cache)
      for _ = 1, 2 do
        local _, err, code = run({ "track", TRACK }, { SPOTIFY_TOKEN_CACHE = cache })
        assert.equal(0, code, err)
      end
      assert.equal(1, #f:log_for("/api/token"))
      assert.not_matches("test%-secret", slurp(cache))
      os.remove(cache)
    end)
  end)

  describe("errors", function()
    local FAST = { SPOTIFY_MAX_RETRIES = "0" }

    --- Run, expect `code` and one line on stderr that starts with `prefix`.
    local function fails(code, prefix, args, env, faults)
      if faults then f:faults(faults) end
      local out, err, got = run(args, env)
      assert.equal(code, got, err)
      assert.equal("", out)
      assert.matches("^[^\n]+\n$", err)
      assert.equal(prefix, err:sub(1, #prefix), err)
      assert.not_matches("test%-secret", err)
      return err
    end

    it("exits 3 for an invalid ID and sends nothing", function()
      fails(3, "spotify: invalid_argument: ", { "track", "nope" })
      assert.equal(0, #f:log_for("/v1/"))
    end)

    it("exits 4 when the credentials are refused", function()
      fails(4, "spotify: auth (400): ", { "track", TRACK }, { SPOTIFY_CLIENT_SECRET = "wrong" })
    end)

    it("exits 5 on 403", function()
      fails(5, "spotify: forbidden (403)", { "track", TRACK }, nil,
        { { path = "/v1/tracks", status = 403, fixture = "error_403_forbidden.json" } })
    end)

    it("exits 6 on 404", function()
      fails(6, "spotify: not_found (404): ", { "album", UNKNOWN })
    end)

    it("exits 7 on another 4xx", function()
      fails(7, "spotify: bad_request (400): Invalid limit", { "search", "Muse", "--limit", "100" })
    end)

    it("exits 8 when rate limited for longer than max_retry_after", function()
      fails(8, "spotify: rate_limited (429)", { "track", TRACK }, nil,
        { { path = "/v1/tracks", status = 429, headers = { ["Retry-After"] = "3600" } } })
    end)

    it("exits 9 on 5xx after the retries", function()
      fails(9, "spotify: server (502)", { "track", TRACK }, FAST,
        { { path = "/v1/tracks", status = 502, times = -1 } })
    end)

    it("exits 10 on a network failure", function()
      -- times = -1: libcurl itself resends once on a reused connection that died
      fails(10, "spotify: network", { "track", TRACK }, FAST,
        { { path = "/v1/tracks", action = "drop", times = -1 } })
    end)

    it("exits 11 on a timeout", function()
      fails(11, "spotify: timeout", { "track", TRACK }, { SPOTIFY_MAX_RETRIES = "0", SPOTIFY_TIMEOUT = "0.3" },
        { { path = "/v1/tracks", delay = 1.5 } })
    end)

    it("exits 12 when the answer is not JSON", function()
      fails(12, "spotify: decode", { "track", TRACK }, FAST, { { path = "/v1/tracks", action = "bad_json" } })
    end)

    it("exits 2 on a usage error", function()
      fails(2, "spotify: unknown command 'trak'", { "trak", TRACK })
      fails(2, "spotify: unknown option --frobnicate", { "track", TRACK, "--frobnicate" })
      fails(2, "spotify: --limit must be a positive integer", { "search", "x", "--limit", "lots" })
      fails(2, "spotify: items takes <playlist|album|show>", { "items", "artist", TRACK })
      fails(2, "spotify: SPOTIFY_TIMEOUT must be a number", { "token" }, { SPOTIFY_TIMEOUT = "soon" })
      fails(2, "spotify: --limit does not apply to 'track'", { "track", TRACK, "--limit", "3" })
      fails(2, "spotify: --max needs a value", { "items", "album", ALBUM, "--max" })
      assert.equal(0, #f:log())
    end)

    it("exits 2 naming the variable when credentials are missing", function()
      fails(2, "spotify: option 'client_secret' missing (pass it or set SPOTIFY_CLIENT_SECRET)",
        { "track", TRACK }, { SPOTIFY_CLIENT_SECRET = "" })
    end)

    it("prints usage with --help and exits 0", function()
      local out, _, code = run { "--help" }
      assert.equal(0, code)
      assert.matches("^usage: spotify", out)
      assert.matches("exit codes:", out)
    end)
  end)

  describe("examples run by make demo", function()
    -- The examples require "spotify" like any user script: point them at this tree.
    local function tree_env()
      local build = os.getenv "SPOTIFY_BUILD" or ("build/" .. LUA)
      local path, cpath = "lua/?.lua;lua/?/init.lua;;", build .. "/?.so;;"
      return { LUA_PATH = path, LUA_PATH_5_4 = path, LUA_CPATH = cpath, LUA_CPATH_5_4 = cpath }
    end

    it("catalog.lua prints a track, an album's tracks and a search", function()
      local out, err, code = run({}, tree_env(), "examples/catalog.lua")
      assert.equal(0, code, err)
      assert.matches("Track:  Austerity by Katatonia %(3:41%)", out)
      assert.matches("\n  11%. Absconder %(Bonus Track%)", out)
      assert.matches("Search: \"Muse\" matches 11113 tracks and 171 artists", out)
    end)

    it("game_loop.lua gets every answer between frames", function()
      local out, err, code = run({}, tree_env(), "examples/game_loop.lua")
      assert.equal(0, code, err)
      for _, what in ipairs { "track: Austerity", "album: Sky Void of Stars", "artist: Katatonia",
        "search: Supermassive Black Hole" } do
        assert.matches("frame +%d+  " .. what, out)
      end
      assert.matches("all answers arrived within %d+ frames", out)
    end)
  end)
end)
