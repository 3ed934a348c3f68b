---@meta spotify
-- luacheck: ignore (stubs: LuaLS reads their annotations, nothing runs them)
-- lua-language-server (LuaLS) annotations of lua-spotify's public API:
-- completion and type checks in editors. Never loaded at run time; point
-- LuaLS at this file ("workspace.library" in .luarc.json, see README.md,
-- "Editor support"). The contract these describe is the README's and the
-- reference's (`make doc`).

---@class spotify
---@field VERSION string the module's version, e.g. "0.1.0"
---@field null spotify.Null the value of a JSON null inside an array (the same as cjson.null)
---@field cache spotify.caches the token caches
local spotify = {}

---@class spotify.Null: lightuserdata

---@alias spotify.ErrorKind
---| "invalid_argument" # a bad ID, query or argument; nothing was sent
---| "auth" # credentials refused by the token endpoint, or a 401 after a renewal
---| "forbidden" # 403
---| "not_found" # 404
---| "bad_request" # any other 4xx
---| "rate_limited" # 429 after the retries, or a Retry-After above max_retry_after
---| "server" # 5xx after the retries
---| "network" # connection refused, reset or dropped, DNS, TLS
---| "timeout" # timeout or connect_timeout ran out
---| "decode" # the body is not the JSON expected, or larger than max_body
---| "closed" # the client was closed, or the started request cancelled

---The error of every `nil, err`; `tostring(err)` gives one line.
---@class spotify.Error
---@field kind spotify.ErrorKind what went wrong
---@field status integer? the HTTP status, or nil
---@field message string Spotify's message where it gave one, else a plain description
---@field retry_after number? seconds, for "rate_limited"
---@field reason string? Spotify's `error.reason` where the answer had one (e.g. "QUOTA_EXCEEDED")
---@field method string? the request's HTTP method; nil when nothing was sent
---@field url string? the request's URL (never the token or the secret); nil when nothing was sent

---A paging object as Spotify sends it.
---@class spotify.Page
---@field items table[] this page's items
---@field total integer? how many items in all
---@field limit integer?
---@field offset integer?
---@field next string? the next page's URL, nil on the last
---@field previous string? the previous page's URL, nil on the first
---@field href string?

---What `on_request` receives: an HTTP exchange, or an event (`event` set).
---@class spotify.RequestInfo
---@field method string "GET", or "POST" for the token endpoint
---@field url string never the token or the secret
---@field status integer? the HTTP status (nil when the exchange failed)
---@field error string? the failure's kind, when the exchange failed
---@field attempt integer 1 for the first attempt
---@field elapsed number seconds
---@field bytes integer? bytes of the answer
---@field event "cache_error"|"cache_warning"|"insecure_token_url"|"rate_limited_wait"|nil set for an event instead of an exchange (an exchange never has it)
---@field op string? "cache_error", "cache_warning": the cache operation concerned
---@field message string? "cache_error", "cache_warning", "insecure_token_url": what happened (never the token)
---@field reason string? "rate_limited_wait": "penalty" or "pacing"
---@field wait number? the wait's seconds ("rate_limited_wait")

---@class spotify.RateLimit
---@field requests integer at most this many requests start in any window
---@field window number the window, in seconds
---@field fallback integer? per-process pacing while the shared cache is down (default: requests)

---The options of `spotify.client`; every one is optional, the credentials
---default to the environment.
---@class spotify.Options
---@field client_id string? default: SPOTIFY_CLIENT_ID
---@field client_secret string? default: SPOTIFY_CLIENT_SECRET; never logged, cached or shown
---@field access_token string? use this token as is (no credentials, no renewal)
---@field cache spotify.Cache? token cache; default spotify.cache.memory()
---@field market string? default market, ISO 3166-1 alpha-2 or "from_token"
---@field timeout number? seconds for one attempt (default 10); a retried call makes several
---@field connect_timeout number? seconds to connect, within each attempt (default 5)
---@field max_retries integer? retries after network errors, 5xx and 429 (default 3)
---@field max_retry_after number? a 429 asking to wait longer fails at once (default 60)
---@field refresh_buffer number? seconds before expiry a token is renewed (default 60)
---@field deadline number? seconds bounding one whole call: its retries and waits
---@field api_base string? default: SPOTIFY_API_BASE, else "https://api.spotify.com/v1"
---@field token_url string? default: SPOTIFY_TOKEN_URL, else "https://accounts.spotify.com/api/token"
---@field ca_file string? PEM bundle for TLS verification
---@field proxy string? e.g. "http://127.0.0.1:3128"
---@field user_agent string? default "lua-spotify/<version>"
---@field on_request fun(info: spotify.RequestInfo)? after every HTTP exchange, and for events
---@field batch boolean? use the batch endpoints for plural methods (default true)
---@field concurrency integer? requests in flight for plural methods and pages (default 8)
---@field max_body integer? bytes; a larger answer is a "decode" error (default 64 MiB)
---@field rate_limit spotify.RateLimit? shared pacing across every client of the cache
---@field budget_key string? what the shared penalty and pacing are kept under (default: the client ID)
---@field responses spotify.Responses? a response cache, see spotify.responses
---@field batch_window number? seconds; single lookups made within it go out as one batch GET
---@field language string? Accept-Language for localized names, e.g. "de" or "es-ES"
---@field scopes string[]? sent as `scope` with the token request
---@field metrics table? inside nginx: ngx.shared.NAME the client adds its counters to (see spotify.prometheus)

---A token cache: the built-in ones, or any table with get and set.
---@class spotify.Cache
---@field get fun(self: spotify.Cache, key: string): string?
---@field set fun(self: spotify.Cache, key: string, value: string, ttl_seconds: number)
---@field lock (fun(self: spotify.Cache, key: string, ttl_seconds: number): boolean?)?
---@field unlock (fun(self: spotify.Cache, key: string))?
---@field incr (fun(self: spotify.Cache, key: string, delta: number, ttl_seconds: number): number)?

---@class spotify.RedisCacheOptions
---@field prefix string? before every key (default "spotify:")
---@field connect (fun(): any)? returns a new open connection; used when there is none and after a failure
---@field timeout number|false|nil seconds set on every connection (default 1); false leaves it alone

---@class spotify.caches
local caches = {}

---The default: one process; one instance may be shared by several clients.
---Bounded in bytes: answers (as a response store) go first, never a token or a penalty.
---@param opts? {max_bytes: integer?} max_bytes: the bound (default 64 MiB)
---@return spotify.Cache
function caches.memory(opts) end

---A JSON file (0600, written atomically) shared by the processes of one machine.
---@param path string
---@return spotify.Cache
function caches.file(path) end

---An nginx lua_shared_dict, shared by every worker. Answers never evict
---anything unless `answers_only` says the dict holds answers alone.
---@param dict table ngx.shared.NAME
---@param opts? {answers_only: boolean?}
---@return spotify.Cache
function caches.shdict(dict, opts) end

---Redis, shared by every process on every machine.
---@param connection any an open lua-redis or resty.redis connection, or nil with opts.connect
---@param opts? spotify.RedisCacheOptions
---@return spotify.Cache
function caches.redis(connection, opts) end

---A response cache (see README "Spending less quota" in the contract).
---@class spotify.ResponsesOptions
---@field store spotify.Cache? the shared tier: any token cache
---@field ttl number|table<string, number>|nil seconds per method name (`default` for the rest), or one number
---@field lru integer? decoded answers kept in this process
---@field stale_if_error number? seconds an expired answer may stand in when Spotify fails
---@field max_ttl number? caps every ttl and max-age (default 86400)
---@field max_entry_bytes integer? a longer answer is handed out, not kept (default: no bound but max_body)
---@field lru_bytes integer? bytes of JSON text the process tier holds (default 32 MiB)

---A response cache object, for the `responses` option; may be shared by several clients.
---@class spotify.Responses

---@param opts spotify.ResponsesOptions
---@return spotify.Responses
function spotify.responses(opts) end

---Make a client. Does no network I/O; raises on an unknown option, a wrong
---type or missing credentials, naming the option and showing the value.
---@param opts? spotify.Options
---@return spotify.Client
function spotify.client(opts) end

---Is `v` an error object of this module?
---@param v any
---@return boolean
function spotify.is_error(v) end

---Prometheus' text exposition format (0.0.4) of the clients' counters.
---@param dict table? ngx.shared.NAME that clients made with `metrics = dict` count into; without it, every live client of this process
---@return string text
function spotify.prometheus(dict) end

---Counters of `client:stats()`.
---@class spotify.Stats
---@field requests integer
---@field retries integer
---@field token_fetches integer
---@field cache_hits integer
---@field cache_errors integer
---@field bytes_received integer
---@field connections_opened integer
---@field rate_limited_waits integer
---@field rate_limited_wait_s number
---@field retry_wait_s number seconds of backoff before retries (each one counted in `retries`)

---A request started by `client:start`.
---@class spotify.Request
local Request = {}

---Has the request finished?
---@return boolean
function Request:done() end

---What the method returns, once done: the value, or nil and the error
---("invalid_argument" while not done, "closed" once cancelled).
---@return any value
---@return spotify.Error? err
function Request:result() end

---Stop the request; it never finishes.
---@return boolean stopped whether a request in flight was stopped
function Request:cancel() end

---A client: every API method returns the decoded JSON as plain tables, or
---nil and a spotify.Error. Closed by close(), __gc and, on Lua 5.4, __close.
---@class spotify.Client
local Client = {}

---GET /tracks/{id}: a track.
---@param id string a track ID, `spotify:track:` URI or open.spotify.com URL
---@param opts? table query parameters: market
---@return table? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:track(id, opts) end

---GET /albums/{id}: an album.
---@param id string an album ID, `spotify:album:` URI or open.spotify.com URL
---@param opts? table query parameters: market
---@return table? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:album(id, opts) end

---GET /artists/{id}: an artist.
---@param id string an artist ID, `spotify:artist:` URI or open.spotify.com URL
---@return table? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:artist(id) end

---GET /playlists/{id}: a playlist.
---@param id string a playlist ID, `spotify:playlist:` URI or open.spotify.com URL
---@param opts? table query parameters: market, fields, additional_types
---@return table? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:playlist(id, opts) end

---GET /shows/{id}: a show.
---@param id string a show ID, `spotify:show:` URI or open.spotify.com URL
---@param opts? table query parameters: market
---@return table? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:show(id, opts) end

---GET /episodes/{id}: an episode.
---@param id string an episode ID, `spotify:episode:` URI or open.spotify.com URL
---@param opts? table query parameters: market
---@return table? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:episode(id, opts) end

---GET /audiobooks/{id}: an audiobook.
---@param id string an audiobook ID, `spotify:audiobook:` URI or open.spotify.com URL
---@param opts? table query parameters: market
---@return table? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:audiobook(id, opts) end

---GET /chapters/{id}: a chapter.
---@param id string a chapter ID, `spotify:chapter:` URI or open.spotify.com URL
---@param opts? table query parameters: market
---@return table? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:chapter(id, opts) end

---GET /audio-analysis/{id}: a track's audio analysis.
---@param id string a track ID, `spotify:track:` URI or open.spotify.com URL
---@return table? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:audio_analysis(id) end

---GET /playlists/{id}/images: an array of image objects.
---@param id string a playlist ID, `spotify:playlist:` URI or open.spotify.com URL
---@return table[]? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:playlist_images(id) end

---GET /artists/{id}/top-tracks: an array of tracks.
---@param id string an artist ID, `spotify:artist:` URI or open.spotify.com URL
---@param opts? table query parameters: market
---@return table[]? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:artist_top_tracks(id, opts) end

---GET /artists/{id}/related-artists: an array of artists.
---@param id string an artist ID, `spotify:artist:` URI or open.spotify.com URL
---@return table[]? value the decoded answer, or nil
---@return spotify.Error? err nil on success
function Client:artist_related_artists(id) end

---GET /albums/{id}/tracks: a paging object of tracks.
---@param id string an album ID, `spotify:album:` URI or open.spotify.com URL
---@param opts? table query parameters: market, limit, offset
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:album_tracks(id, opts) end

---GET /artists/{id}/albums: a paging object of albums.
---@param id string an artist ID, `spotify:artist:` URI or open.spotify.com URL
---@param opts? table query parameters: include_groups, market, limit, offset
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:artist_albums(id, opts) end

---GET /playlists/{id}/items: a paging object of playlist entries.
---@param id string a playlist ID, `spotify:playlist:` URI or open.spotify.com URL
---@param opts? table query parameters: market, fields, limit, offset, additional_types
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:playlist_items(id, opts) end

---GET /shows/{id}/episodes: a paging object of episodes.
---@param id string a show ID, `spotify:show:` URI or open.spotify.com URL
---@param opts? table query parameters: market, limit, offset
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:show_episodes(id, opts) end

---GET /audiobooks/{id}/chapters: a paging object of chapters.
---@param id string an audiobook ID, `spotify:audiobook:` URI or open.spotify.com URL
---@param opts? table query parameters: market, limit, offset
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:audiobook_chapters(id, opts) end

---GET /tracks?ids=: any number of IDs, 50 per request, concurrent; input order, `spotify.null` for unknown IDs.
---@param ids string[] IDs, URIs or URLs of tracks
---@param opts? table query parameters: market
---@return (table|spotify.Null)[]? list
---@return spotify.Error? err nil on success
function Client:tracks(ids, opts) end

---GET /albums?ids=: any number of IDs, 20 per request, concurrent; input order, `spotify.null` for unknown IDs.
---@param ids string[] IDs, URIs or URLs of albums
---@param opts? table query parameters: market
---@return (table|spotify.Null)[]? list
---@return spotify.Error? err nil on success
function Client:albums(ids, opts) end

---GET /artists?ids=: any number of IDs, 50 per request, concurrent; input order, `spotify.null` for unknown IDs.
---@param ids string[] IDs, URIs or URLs of artists
---@param opts? table query parameters: market
---@return (table|spotify.Null)[]? list
---@return spotify.Error? err nil on success
function Client:artists(ids, opts) end

---GET /shows?ids=: any number of IDs, 50 per request, concurrent; input order, `spotify.null` for unknown IDs.
---@param ids string[] IDs, URIs or URLs of shows
---@param opts? table query parameters: market
---@return (table|spotify.Null)[]? list
---@return spotify.Error? err nil on success
function Client:shows(ids, opts) end

---GET /episodes?ids=: any number of IDs, 50 per request, concurrent; input order, `spotify.null` for unknown IDs.
---@param ids string[] IDs, URIs or URLs of episodes
---@param opts? table query parameters: market
---@return (table|spotify.Null)[]? list
---@return spotify.Error? err nil on success
function Client:episodes(ids, opts) end

---GET /audiobooks?ids=: any number of IDs, 50 per request, concurrent; input order, `spotify.null` for unknown IDs.
---@param ids string[] IDs, URIs or URLs of audiobooks
---@param opts? table query parameters: market
---@return (table|spotify.Null)[]? list
---@return spotify.Error? err nil on success
function Client:audiobooks(ids, opts) end

---GET /chapters?ids=: any number of IDs, 50 per request, concurrent; input order, `spotify.null` for unknown IDs.
---@param ids string[] IDs, URIs or URLs of chapters
---@param opts? table query parameters: market
---@return (table|spotify.Null)[]? list
---@return spotify.Error? err nil on success
function Client:chapters(ids, opts) end

---GET /search: one paging object per type (`tracks`, `artists`, ...).
---@param q string the query
---@param opts? table `type` (string or list, default "track"), `market`, `limit`, `offset`, `include_external`
---@return table? result
---@return spotify.Error? err nil on success
function Client:search(q, opts) end

---GET /users/{id}: a user's public profile.
---@param user_id string the user's ID
---@return table? user
---@return spotify.Error? err nil on success
function Client:user(user_id) end

---GET /users/{id}/playlists: a paging object of playlists.
---@param user_id string the user's ID
---@param opts? table `limit`, `offset`
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:user_playlists(user_id, opts) end

---GET /browse/categories: a paging object of categories.
---@param opts? table `locale`, `limit`, `offset`
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:categories(opts) end

---GET /browse/categories/{id}: one category.
---@param id string the category's ID
---@param opts? table `locale`
---@return table? category
---@return spotify.Error? err nil on success
function Client:category(id, opts) end

---GET /browse/categories/{id}/playlists: a paging object of playlists.
---@param id string the category's ID
---@param opts? table `limit`, `offset`
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:category_playlists(id, opts) end

---GET /browse/featured-playlists: a paging object of playlists.
---@param opts? table `locale`, `limit`, `offset`
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:featured_playlists(opts) end

---GET /browse/new-releases: a paging object of albums.
---@param opts? table `limit`, `offset`
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:new_releases(opts) end

---GET /markets: an array of country codes.
---@return string[]? markets
---@return spotify.Error? err nil on success
function Client:markets() end

---GET /audio-features: one table for one ID, an array in input order for a list.
---@param id_or_ids string|string[] a track ID, URI or URL, or a list of them
---@return table? features
---@return spotify.Error? err nil on success
function Client:audio_features(id_or_ids) end

---GET /recommendations: the recommendations object (`seeds`, `tracks`).
---@param opts? table `seed_artists`, `seed_genres`, `seed_tracks`, `limit`, `market`, tunable attributes
---@return table? recommendations
---@return spotify.Error? err nil on success
function Client:recommendations(opts) end

---GET /recommendations/available-genre-seeds: an array of genre names.
---@return string[]? genres
---@return spotify.Error? err nil on success
function Client:genre_seeds() end

---GET {api_base}{path}: any endpoint, decoded. `path` may be a full URL that starts with `api_base` (a page's `next`), nothing else.
---@param path string below `api_base`, e.g. "/markets", or a page's full URL
---@param query? table query parameters
---@return any value the decoded JSON, or nil
---@return spotify.Error? err nil on success
function Client:get(path, query) end

---Every item of every page from `first` in one array.
---@param first spotify.Page a paging object (also one inside an answer: `res.tracks`)
---@param opts? {max: integer} stop after `max` items
---@return table[]? items
---@return spotify.Error? err nil on success
function Client:all(first, opts) end

---The page after `page`; nil and no error after the last.
---@param page spotify.Page
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:next(page) end

---The page before `page`; nil and no error before the first.
---@param page spotify.Page
---@return spotify.Page? page
---@return spotify.Error? err nil on success
function Client:previous(page) end

---Every item of every page from `first`; raises the error object when a later page fails.
---@param first spotify.Page
---@return fun(): table iterator over the items
function Client:items(first) end

---Page by page from `first`; raises the error object when a later page fails.
---@param first spotify.Page
---@return fun(): spotify.Page iterator over the pages
function Client:pages(first) end

---The current access token, fetched or renewed as needed.
---@return string? token
---@return number|spotify.Error seconds_left the seconds the token has left, or the error when `token` is nil
function Client:access_token() end

---Start any API method without blocking; advance it with poll. Raises
---when `name` is not an API method.
---@param name string an API method's name, e.g. "search"
---@param ... any that method's arguments
---@return spotify.Request
function Client:start(name, ...) end

---Advance every started request; never waits longer than `wait`.
---@param wait? number seconds (default 0)
---@return integer in_flight requests still in flight
function Client:poll(wait) end

---Sockets and timeout for an external event loop.
---@return {read: integer[], write: integer[], timeout: number}
function Client:fd_info() end

---@return spotify.Stats
function Client:stats() end

---Free every handle; idempotent.
function Client:close() end

return spotify
