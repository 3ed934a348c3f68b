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
      SPOTIFY_ACCESS_TOKEN = "", SPOTIFY_TOKEN_CACHE = "", SPOTIFY_MARKET = "", COLUMNS = "",
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
      fails(2, "spotify: unknown --type song (one of: track, artist, album, playlist, show, episode, audiobook)",
        { "search", "x", "-t", "song" })
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

  describe("help", function()
    it("lists the commands with `help` and exits 0", function()
      local out, err, code = run { "help" }
      assert.equal(0, code, err)
      assert.matches("^usage: spotify", out)
      for _, word in ipairs { "search <query>", "items <playlist|album|show>", "token", "help %[command%]" } do
        assert.matches(word, out)
      end
    end)

    it("gives each command's own usage, by `help <command>` or `<command> --help`", function()
      for _, name in ipairs { "track", "album", "artist", "playlist", "show", "episode", "audiobook",
        "search", "items", "token", "help" } do
        local out, err, code = run { "help", name }
        assert.equal(0, code, err)
        assert.equal("usage: spotify " .. name .. " ", out:sub(1, #name + 16), out)
        local again = run { name, "-h" }
        assert.equal(out, again)
      end
      assert.matches("%-l, %-%-limit N", (run { "help", "search" }))
      assert.matches("%-n, %-%-max N", (run { "items", "--help" }))
      assert.equal(0, #f:log())
    end)

    it("refuses help for an unknown command", function()
      local out, err, code = run { "help", "trak" }
      assert.equal(2, code)
      assert.equal("", out)
      assert.equal("spotify: unknown command 'trak' (see spotify help)\n", err)
    end)
  end)

  describe("short flags", function()
    it("-j is --json, wherever it stands", function()
      local long = cjson.decode((run { "track", TRACK, "--json" }))
      for _, args in ipairs { { "track", TRACK, "-j" }, { "-j", "track", TRACK } } do
        local out, err, code = run(args)
        assert.equal(0, code, err)
        assert.same(long, cjson.decode(out))
      end
    end)

    it("a lone -j is never taken for an ID", function()
      local out, err, code = run { "track", "-j" }
      assert.equal(2, code)
      assert.equal("", out)
      assert.same({ kind = "usage", exit = 2, message = "track takes one <id|uri|url>" }, cjson.decode(err).error)
      out, err, code = run { "track", "-q" }
      assert.equal(2, code)
      assert.equal("", out)
      assert.equal("spotify: track takes one <id|uri|url>\n", err)
      assert.equal(0, #f:log_for("/v1/"))
    end)

    it("-t, -l (also attached: -l3), -n and bundled -jq", function()
      local out, err, code = run { "search", "Muse", "-t", "track,artist", "-l3" }
      assert.equal(0, code, err)
      assert.equal("Tracks: 3 of 11113", lines(out)[1])
      local q = f:log_for("/v1/search")[1].query
      assert.matches("limit=3", q)
      assert.matches("type=track,artist", q, 1, true)
      f:config { totals = { album_tracks = 120 } }
      out, err, code = run { "items", "album", ALBUM, "-n", "70", "-jq" }
      assert.equal(0, code, err)
      assert.equal("", err)
      assert.equal(70, #cjson.decode(out))
    end)

    it("refuses an unknown one by its letter", function()
      local _, err, code = run { "track", TRACK, "-x" }
      assert.equal(2, code)
      assert.equal("spotify: unknown option -x\n", err)
      _, err, code = run { "search", "Muse", "-l" }
      assert.equal(2, code)
      assert.equal("spotify: -l needs a value\n", err)
    end)
  end)

  describe("markets", function()
    it("are upper-cased from --market, -m and SPOTIFY_MARKET", function()
      for _, case in ipairs {
        { { "track", TRACK, "--market", "se" }, nil, "SE" },
        { { "track", TRACK, "-m", "gb" }, nil, "GB" },
        { { "track", TRACK }, { SPOTIFY_MARKET = "de" }, "DE" },
        { { "track", TRACK, "-m", "from_token" }, nil, "from_token" },
      } do
        f:reset()
        local _, err, code = run(case[1], case[2])
        assert.equal(0, code, err)
        assert.matches("market=" .. case[3], f:log_for("/v1/tracks")[1].query)
      end
    end)

    it("must be two letters", function()
      local out, err, code = run { "track", TRACK, "--market", "sweden" }
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("^spotify: %-%-market must be a two%-letter country code", err)
      assert.equal(0, #f:log())
    end)
  end)

  describe("--verbose", function()
    local BASIC = "dGVzdC1pZDp0ZXN0LXNlY3JldA==" -- base64 of test-id:test-secret

    it("prints each HTTP exchange on stderr, never a secret or a token", function()
      f:faults { { path = "/v1/tracks", status = 502 } }
      local out, err, code = run { "track", TRACK, "-v" }
      assert.equal(0, code, err)
      assert.matches("Track%s+Austerity", out)
      local rows = lines(err)
      assert.equal(4, #rows, err)
      assert.matches("^spotify: POST " .. f.token_url:gsub("%p", "%%%0") .. " %-> 200 %(attempt 1, %d+ ms", rows[1])
      local url = (f.api_base .. "/tracks/" .. TRACK):gsub("%p", "%%%0")
      assert.matches("^spotify: GET " .. url .. " %-> 502 %(attempt 1, %d+ ms", rows[2])
      assert.matches("^spotify: wait %d+%.%d%d s %(backoff%) before retrying GET " .. url
        .. " %(attempt 1 failed%)$", rows[3])
      assert.matches("^spotify: GET " .. url .. " %-> 200 %(attempt 2, %d+ ms, %d+ bytes%)$", rows[4])
      for _, secret in ipairs { "test%-secret", "tok%-", BASIC, "Bearer", "Basic" } do
        assert.not_matches(secret, err)
      end
    end)

    it("prints JSON objects under --json", function()
      local _, err, code = run { "-jv", "track", TRACK }
      assert.equal(0, code, err)
      local rows = lines(err)
      assert.equal(2, #rows, err)
      local ex = cjson.decode(rows[2]).exchange
      assert.equal("GET", ex.method)
      assert.equal(f.api_base .. "/tracks/" .. TRACK, ex.url)
      assert.equal(200, ex.status)
      assert.equal(1, ex.attempt)
      assert.is_true(ex.elapsed >= 0)
    end)

    it("shows a wait for the app's rate limit, held by a penalty another process shared", function()
      local tmp = io.popen("mktemp -d"):read "*l"
      local path = tmp .. "/tokens.json"
      -- the wall clock to the fraction (os.time() truncates, which left
      -- anywhere from 0.5 to 1.5 s for the command to start)
      local until_ = require("spotify.core").testing().time() + 1.5
      local file = assert(io.open(path, "w"))
      file:write(cjson.encode { [require("spec.support.keys").penalty "test-id"] =
        { value = ("%.3f 1.5"):format(until_), expires = until_ + 5 } })
      file:close()
      os.execute("chmod 600 '" .. path .. "'") -- as the process that wrote it would have
      local out, err, code = run({ "track", TRACK, "-v" }, { SPOTIFY_TOKEN_CACHE = path })
      os.execute("rm -rf '" .. tmp .. "'")
      assert.equal(0, code, err)
      assert.matches("Track%s+Austerity", out)
      assert.matches("spotify: wait %d%.%d%d s %(rate limit: penalty%) before GET ", err)
      assert.equal(1, #f:log_for "/v1/tracks")
      assert.is_true(f:log_for("/v1/tracks")[1].time >= until_ - 0.05, "sent during the penalty")
    end)

    it("is silent without -v", function()
      local _, err, code = run { "track", TRACK }
      assert.equal(0, code, err)
      assert.equal("", err)
    end)
  end)

  describe("errors under --json", function()
    it("are one JSON object on stderr with the error's fields and the exit code", function()
      local out, err, code = run { "album", UNKNOWN, "--json" }
      assert.equal(6, code)
      assert.equal("", out)
      assert.matches("^[^\n]+\n$", err)
      local e = cjson.decode(err).error
      assert.equal("not_found", e.kind)
      assert.equal(404, e.status)
      assert.equal(6, e.exit)
      assert.equal("GET", e.method)
      assert.equal(f.api_base .. "/albums/" .. UNKNOWN, e.url)
      assert.equal("string", type(e.message))
    end)

    it("include usage errors and rate limits", function()
      local _, err, code = run { "-j", "track", TRACK, "--frobnicate" }
      assert.equal(2, code)
      assert.same({ error = { kind = "usage", exit = 2, message = "unknown option --frobnicate" } }, cjson.decode(err))
      f:faults { { path = "/v1/tracks", status = 429, headers = { ["Retry-After"] = "3600" } } }
      _, err, code = run { "track", TRACK, "-j" }
      assert.equal(8, code)
      local e = cjson.decode(err).error
      assert.equal("rate_limited", e.kind)
      assert.equal(3600, e.retry_after)
    end)

    it("stay plain text without --json", function()
      local _, err = run { "album", UNKNOWN }
      assert.matches("^spotify: not_found %(404%)", err)
    end)
  end)

  describe("SPOTIFY_TOKEN_CACHE", function()
    it("warns once on stderr when it cannot be used, and the command still works", function()
      local blocker = dir .. "/not-a-directory"
      local fh = assert(io.open(blocker, "w"))
      fh:write "x"
      fh:close()
      local cache = blocker .. "/token.json"
      for _ = 1, 2 do
        local out, err, code = run({ "track", TRACK }, { SPOTIFY_TOKEN_CACHE = cache })
        assert.equal(0, code, err)
        assert.matches("Track%s+Austerity", out)
        local rows = lines(err)
        assert.equal(1, #rows, err)
        local head = "spotify: warning: SPOTIFY_TOKEN_CACHE=" .. cache .. " is unusable ("
        assert.equal(head, rows[1]:sub(1, #head))
        assert.matches("Not a directory%); the token is not kept between runs$", rows[1])
      end
      assert.equal(2, #f:log_for("/api/token"))
      local _, err = run({ "token", "--json" }, { SPOTIFY_TOKEN_CACHE = cache })
      assert.matches("^SPOTIFY_TOKEN_CACHE=.* is unusable", cjson.decode(err).warning.message)
      os.remove(blocker)
    end)

    it("says nothing when it works", function()
      local cache = dir .. "/cli-quiet-token.json"
      os.remove(cache)
      local _, err, code = run({ "track", TRACK }, { SPOTIFY_TOKEN_CACHE = cache })
      assert.equal(0, code, err)
      assert.equal("", err)
      os.remove(cache)
    end)
  end)

  describe("sections", function()
    it("leaves out a search type without results", function()
      local out, err, code = run { "search", "Muse", "--type", "track,playlist" }
      assert.equal(0, code, err)
      assert.matches("^Tracks: 5 of 11113\n", out)
      assert.not_matches("Playlists", out)
      assert.not_matches("\n\n", out)
    end)

    it("says so when no type has results", function()
      local empty = { href = "x", items = {}, limit = 5, offset = 0, total = 0 }
      f:faults { { path = "/v1/search", body = cjson.encode { tracks = empty, artists = empty } } }
      local out, err, code = run { "search", "zzzz", "-t", "track,artist" }
      assert.equal(0, code, err)
      assert.equal('No results for "zzzz".\n', out)
    end)
  end)

  describe("output width", function()
    local function widest(text)
      local w = 0
      for _, l in ipairs(lines(text)) do w = math.max(w, #l - select(2, l:gsub("[\128-\191]", ""))) end
      return w
    end

    it("fits tables and fields into COLUMNS", function()
      local out, err, code = run({ "search", "Muse", "-l", "3" }, { COLUMNS = "60" })
      assert.equal(0, code, err)
      assert.is_true(widest(out) <= 60, out)
      local rows = lines(out)
      assert.matches("…", rows[3])
      assert.matches("%s3lPr8ghNDBLc2uZovNyLs9$", rows[3]) -- IDs and times are never cut
      assert.matches("%s3:32%s", rows[3])
      out = run({ "track", TRACK }, { COLUMNS = "40" })
      local fields_seen = 0
      for _, l in ipairs(lines(out)) do
        -- a cut URI or URL is a broken link: those two are printed whole
        if l:match "^URI " then
          assert.matches("^URI%s+spotify:track:" .. TRACK .. "$", l)
          fields_seen = fields_seen + 1
        elseif l:match "^URL " then
          assert.matches("^URL%s+https://open%.spotify%.com/track/" .. TRACK .. "$", l)
          fields_seen = fields_seen + 1
        else
          assert.is_true(widest(l .. "\n") <= 40, l)
        end
      end
      assert.equal(2, fields_seen, out)
    end)

    it("uses the whole width it is given, with a default of 100", function()
      local wide = run({ "search", "Muse", "-l", "3" }, { COLUMNS = "200" })
      assert.matches("Black Holes And Revelations", wide)
      assert.not_matches("…", wide)
      local default = run { "search", "Muse", "-l", "3" }
      assert.is_true(widest(default) <= 100)
      assert.equal(wide, default)
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
