--- Writes lua/spotify/types.lua, the LuaLS annotations, from what the code
-- and the data say, so the two cannot drift apart:
--
--   make types        (or: lua tools/gen_types.lua > lua/spotify/types.lua,
--                      with this tree's module on the interpreter's path)
--
-- tools/types.in.lua holds the hand-written part (caches, requests, the
-- methods that are not endpoint rows); its markers are filled from
--   ---@@ANSWERS    the answer objects, typed from spec/support/fixtures
--   ---@@OPTIONS    options.checks, described by the reference's option table
--   ---@@STATS      the counters client:stats() returns
--   ---@@ENDPOINTS  one method per row of lua/spotify/endpoints.lua
-- spec/types_spec.lua runs this and fails when the file differs.
local cjson = require "cjson"
local spotify = require "spotify"
local endpoints = require "spotify.endpoints"
local options = require "spotify.options"

local ROOT = (arg and arg[0] and arg[0]:match "^(.*)/tools/[^/]*$") or "."

local function read(path)
  local f = assert(io.open(ROOT .. "/" .. path, "rb"))
  local s = f:read "*a"
  f:close()
  return s
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

------------------------------------------------------------------ answers
-- Each class: the fixture and the path to one such object in it. Nested
-- objects and arrays of objects take the class NESTED names for the field;
-- any other nested table is a plain table.
local ANSWERS = {
  { "Image", "track.json", { "album", "images", 1 }, "an image: its URL and size in pixels" },
  { "ExternalUrls", "track.json", { "external_urls" }, "links to the object on the web" },
  { "Followers", "artist.json", { "followers" }, "a follower count" },
  { "Copyright", "album.json", { "copyrights", 1 }, "a copyright notice" },
  { "Person", "audiobook.json", { "authors", 1 }, "an author or narrator" },
  { "SimplifiedArtist", "track.json", { "artists", 1 }, "an artist inside another answer" },
  { "Artist", "artist.json", {}, "an artist: `client:artist`" },
  { "SimplifiedAlbum", "track.json", { "album" }, "an album inside another answer" },
  { "SimplifiedTrack", "album.json", { "tracks", "items", 1 }, "a track of an album's pages" },
  { "Track", "track.json", {}, "a track: `client:track`" },
  { "Album", "album.json", {}, "an album: `client:album`, its first page of tracks in `tracks`" },
  { "User", "playlist.json", { "owner" }, "a user's public profile" },
  { "PlaylistItem", "playlist_items.json", { "items", 1 },
    "an entry of a playlist: the track or episode and who added it" },
  { "Playlist", "playlist.json", {}, "a playlist: `client:playlist`" },
  { "SimplifiedShow", "episode.json", { "show" }, "a show inside another answer" },
  { "SimplifiedEpisode", "show.json", { "episodes", "items", 1 }, "an episode of a show's pages" },
  { "Show", "show.json", {}, "a show: `client:show`" },
  { "Episode", "episode.json", {}, "an episode: `client:episode`" },
  { "SimplifiedAudiobook", "chapter.json", { "audiobook" }, "an audiobook inside another answer" },
  { "SimplifiedChapter", "audiobook.json", { "chapters", "items", 1 }, "a chapter of an audiobook's pages" },
  { "Audiobook", "audiobook.json", {}, "an audiobook: `client:audiobook`" },
  { "Chapter", "chapter.json", {}, "a chapter: `client:chapter`" },
  { "Category", "browse_category.json", {}, "a browse category" },
}

-- field name -> class, for fields holding objects (or arrays of them), per class
local NESTED = {
  ["*"] = { images = "Image", external_urls = "ExternalUrls", followers = "Followers", copyrights = "Copyright",
    authors = "Person", narrators = "Person", owner = "User", added_by = "User", icons = "Image" },
  Track = { album = "SimplifiedAlbum", artists = "SimplifiedArtist" },
  SimplifiedTrack = { artists = "SimplifiedArtist" },
  SimplifiedAlbum = { artists = "SimplifiedArtist" },
  Album = { artists = "SimplifiedArtist", tracks = "Page.SimplifiedTrack" },
  Playlist = { tracks = "Page.PlaylistItem" },
  PlaylistItem = { track = "Track|spotify.Episode" },
  Show = { episodes = "Page.SimplifiedEpisode" },
  Episode = { show = "SimplifiedShow" },
  Audiobook = { chapters = "Page.SimplifiedChapter" },
  Chapter = { audiobook = "SimplifiedAudiobook" },
  SimplifiedAudiobook = { chapters = "Page.SimplifiedChapter" },
}

-- the paging objects: Page.<item class>
local PAGES = { "SimplifiedTrack", "SimplifiedAlbum", "PlaylistItem", "SimplifiedEpisode", "SimplifiedChapter",
  "SimplifiedPlaylist", "Category", "Track", "Artist", "Show", "Audiobook" }

local function fixture(name)
  return cjson.decode(read("spec/support/fixtures/" .. name))
end

local function lua_type(v)
  local t = type(v)
  if t == "string" then return "string" end
  if t == "boolean" then return "boolean" end
  if t == "number" then return math.floor(v) == v and "integer" or "number" end
  return nil
end

local function field_type(class, name, v)
  local nested = (NESTED[class] or {})[name] or NESTED["*"][name]
  if type(v) == "table" and #v > 0 or (type(v) == "table" and next(v) == nil) then
    if nested then return "spotify." .. nested .. "[]" end
    local first = v[1]
    local inner = first ~= nil and lua_type(first)
    return inner and (inner .. "[]") or "table[]"
  end
  if type(v) == "table" then return nested and ("spotify." .. nested) or "table" end
  if v == cjson.null then return nested and ("spotify." .. nested .. "?") or "any" end
  return lua_type(v) or "any"
end

local function answers()
  local out = {}
  local function add(line) out[#out + 1] = line end
  add "---A paging object as Spotify sends it; `items` is typed in the Page.<item> classes."
  add "---@class spotify.Page"
  add "---@field items table[] this page's items"
  add "---@field total integer? how many items in all"
  add "---@field limit integer?"
  add "---@field offset integer?"
  add "---@field next string? the next page's URL, nil on the last"
  add "---@field previous string? the previous page's URL, nil on the first"
  add "---@field href string?"
  add ""
  for _, item in ipairs(PAGES) do
    add("---@class spotify.Page." .. item .. ": spotify.Page")
    add("---@field items spotify." .. item .. "[]")
    add ""
  end
  add "---A playlist inside another answer (a user's, a category's, the featured ones)."
  add "---@class spotify.SimplifiedPlaylist: spotify.Playlist"
  add ""
  add "---What `client:search` returns: one page per type asked for."
  add "---@class spotify.SearchResult"
  for _, kind in ipairs { "tracks:Track", "artists:Artist", "albums:SimplifiedAlbum",
    "playlists:SimplifiedPlaylist", "shows:Show", "episodes:SimplifiedEpisode", "audiobooks:Audiobook" } do
    local field, class = kind:match "^(%w+):(%w+)$"
    add(("---@field %s spotify.Page.%s?"):format(field, class))
  end
  add ""
  for _, a in ipairs(ANSWERS) do
    local class, file, path, doc = a[1], a[2], a[3], a[4]
    local v = fixture(file)
    for _, step in ipairs(path) do v = assert(v[step], file .. ": no " .. tostring(step)) end
    add("---" .. doc:sub(1, 1):upper() .. doc:sub(2) .. ".")
    add("---@class spotify." .. class)
    for _, name in ipairs(sorted_keys(v)) do
      add(("---@field %s %s"):format(name, field_type(class, name, v[name])))
    end
    add ""
  end
  return (table.concat(out, "\n"):gsub("\n+$", ""))
end

------------------------------------------------------------------ options
-- The reference's option table: name -> {type, default, meaning}.
local function reference_options()
  local out = {}
  for name, kind, default, meaning in read("doc/spotify.luadoc")
    :gmatch "\n%-%- <tr><td>`([%w_]+)`</td><td>([^<]*)</td><td>(.-)</td><td>(.-)</td></tr>" do
    out[name] = { kind = kind, default = default, meaning = meaning }
  end
  return out
end

-- LuaLS types the reference's plain words cannot say.
local OPTION_TYPES = {
  cache = "spotify.Cache", on_request = "fun(info: spotify.RequestInfo)", rate_limit = "spotify.RateLimit",
  responses = "spotify.Responses", scopes = "string[]", max_retries = "integer", concurrency = "integer",
  max_body = "integer",
}

local function plain(html)
  return (html:gsub("@{([^}]+)}", "%1"):gsub("<[^>]+>", ""):gsub("`", ""):gsub("&lt;", "<"):gsub("&gt;", ">")
    :gsub("&amp;", "&"):gsub("%s+", " "))
end

local function options_fields()
  local ref = reference_options()
  local out = {}
  for _, name in ipairs(sorted_keys(options.checks)) do
    local r = ref[name] or { kind = "any", default = "none", meaning = "see the reference" }
    local kind = OPTION_TYPES[name] or (r.kind:match "^[%w.]+$" and r.kind) or "any"
    local default = plain(r.default)
    out[#out + 1] = ("---@field %s %s? %s%s"):format(name, kind, plain(r.meaning),
      (default ~= "none" and default ~= "") and (" (default: " .. default .. ")") or "")
  end
  return table.concat(out, "\n")
end

------------------------------------------------------------------ stats
local STATS = {
  requests = "HTTP requests made, token requests included",
  retries = "attempts repeated after a network error, 5xx or 429",
  token_fetches = "tokens fetched from the token endpoint",
  cache_hits = "tokens found in the cache",
  cache_errors = "cache operations that failed (the calls went on)",
  bytes_received = "bytes of answers received",
  connections_opened = "connections opened",
  rate_limited_waits = "waits for the app's rate limit (a shared penalty or pacing)",
  rate_limited_wait_s = "seconds spent in those waits",
  retry_wait_s = "seconds of backoff before retries (each one counted in `retries`)",
  response_hits = "answers from the response cache's process tier",
  response_shared_hits = "answers from the response cache's shared store",
  response_stale = "expired answers handed out: stand-ins while Spotify failed (stale_if_error)"
    .. " and answers renewed meanwhile (stale_while_revalidate)",
  response_revalidated = "expired answers a 304 renewed (conditional requests)",
  coalesced = "calls that rode on another's identical request",
  batched = "single lookups that went out inside a batch request",
}

local function stats_fields(client)
  local out = {}
  local stats = client:stats()
  for _, name in ipairs(sorted_keys(stats)) do
    local kind = name:match "_s$" and "number" or "integer"
    out[#out + 1] = ("---@field %s %s %s"):format(name, kind, STATS[name] or "a counter of client:stats()")
  end
  return table.concat(out, "\n")
end

------------------------------------------------------------------ endpoints
local ARTICLE = { album = "an", artist = "an", episode = "an", audiobook = "an" }
local CLASS_OF = { track = "Track", album = "Album", artist = "Artist", playlist = "Playlist", show = "Show",
  episode = "Episode", audiobook = "Audiobook", chapter = "Chapter", user = "User", category = "Category" }
-- the path word before {id} of the object itself: /tracks/{id} is a track
local COLLECTION = { track = "tracks", album = "albums", artist = "artists", playlist = "playlists",
  show = "shows", episode = "episodes", audiobook = "audiobooks", chapter = "chapters", user = "users",
  category = "categories" }
-- answers no class describes
local WHAT = { audio_analysis = "a track's audio analysis",
  recommendations = "the recommendations object (`seeds`, `tracks`)" }
-- the last word of a path, or the field unwrapped: what a list or page holds
local ITEMS = {
  tracks = { "SimplifiedTrack", "tracks" }, albums = { "SimplifiedAlbum", "albums" },
  items = { "PlaylistItem", "playlist entries" }, episodes = { "SimplifiedEpisode", "episodes" },
  chapters = { "SimplifiedChapter", "chapters" }, playlists = { "SimplifiedPlaylist", "playlists" },
  categories = { "Category", "categories" },
}
local ARRAYS = {
  tracks = { "spotify.Track[]", "an array of tracks" }, artists = { "spotify.Artist[]", "an array of artists" },
  markets = { "string[]", "an array of country codes" }, genres = { "string[]", "an array of genre names" },
  images = { "spotify.Image[]", "an array of image objects" },
}
-- query parameters beyond market/limit/offset, for the parameter's text only
local EXTRA_QUERY = {
  playlist = { "fields", "additional_types" }, playlist_items = { "fields", "additional_types" },
  artist_albums = { "include_groups" }, categories = { "locale" }, category = { "locale" },
  featured_playlists = { "locale" }, search = { "type", "include_external" },
  recommendations = { "seed_artists", "seed_genres", "seed_tracks", "limit", "tunable attributes" },
}

local function endpoint_method(row)
  local out = {}
  local function add(line) out[#out + 1] = line end
  local last = row.path:match "([%w%-]+)$"
  local kind = row.id
  local noun = kind and ((ARTICLE[kind] or "a") .. " " .. kind) or nil
  local what, ret, retname
  if row.batch then
    local class = CLASS_OF[kind] and ("spotify." .. CLASS_OF[kind]) or "table"
    what = ("any number of IDs, %d per request, concurrent; input order, `spotify.null` for unknown IDs.")
      :format(row.batch.max)
    ret, retname = "(" .. class .. "|spotify.Null)[]?", "list"
  elseif row.pages then
    local items = ITEMS[row.unwrap or last] or { nil, "items" }
    what = "a paging object of " .. items[2] .. "."
    ret, retname = (items[1] and ("spotify.Page." .. items[1]) or "spotify.Page") .. "?", "page"
  elseif row.unwrap and ARRAYS[row.unwrap] or ARRAYS[last] then
    local a = ARRAYS[row.unwrap] or ARRAYS[last]
    what, ret, retname = a[2] .. ".", a[1] .. "?", "value"
  elseif row.query then
    what, ret, retname = "one paging object per type (`tracks`, `artists`, ...).", "spotify.SearchResult?", "result"
  elseif WHAT[row.name] then
    what, ret, retname = WHAT[row.name] .. ".", "table?", "value"
  elseif kind and CLASS_OF[kind] and COLLECTION[kind] == row.path:match "([%w%-]+)/{id}$" then
    what, ret, retname = noun .. ".", "spotify." .. CLASS_OF[kind] .. "?", "value"
  else
    what, ret, retname = "the decoded answer.", "table?", "value"
  end
  add(("---GET %s: %s"):format(row.path, what))
  local args = {}
  if row.batch then
    add(("---@param ids string[] IDs, URIs or URLs of %ss"):format(kind))
    args[#args + 1] = "ids"
  elseif kind == "user" or kind == "category" then
    add(("---@param id string the %s's ID"):format(kind))
    args[#args + 1] = "id"
  elseif kind then
    add(("---@param id string %s ID, `spotify:%s:` URI or open.spotify.com URL"):format(noun, kind))
    args[#args + 1] = "id"
  elseif row.query then
    add(("---@param %s string the query"):format(row.query))
    args[#args + 1] = row.query
  end
  local query = {}
  if row.market then query[#query + 1] = "market" end
  for _, q in ipairs(EXTRA_QUERY[row.name] or {}) do query[#query + 1] = q end
  if row.pages then
    query[#query + 1] = "limit"
    query[#query + 1] = "offset"
  end
  add("---@param opts? table query parameters" .. (#query > 0 and (": " .. table.concat(query, ", ")) or ""))
  args[#args + 1] = "opts"
  add(("---@return %s %s the decoded answer, or nil"):format(ret, retname))
  add "---@return spotify.Error? err nil on success"
  add(("function Client:%s(%s) end"):format(row.name, table.concat(args, ", ")))
  return table.concat(out, "\n")
end

local function endpoint_methods(client)
  local methods = getmetatable(client).__index
  local out = {}
  for _, row in ipairs(endpoints) do
    -- rows behind another method (audio_feature, audio_features_batch) are no method of their own
    if type(methods[row.name]) == "function" then out[#out + 1] = endpoint_method(row) end
  end
  return table.concat(out, "\n\n")
end

------------------------------------------------------------------ the file
local client = spotify.client { client_id = "id", client_secret = "secret", api_base = "http://127.0.0.1:9/v1",
  token_url = "http://127.0.0.1:9/api/token" }
local parts = {
  ANSWERS = answers(), OPTIONS = options_fields(), STATS = stats_fields(client), ENDPOINTS = endpoint_methods(client),
}
client:close()
local text = read "tools/types.in.lua":gsub("%-%-%-@@(%u+)", function(name)
  return assert(parts[name], "tools/types.in.lua: unknown marker " .. name)
end)
io.write(text)
