--- A small JSON API over the Spotify Web API, served from nginx (see
-- nginx.conf next to this file). One client per worker; the token lives in
-- the shared dict `spotify_tokens`, so all workers share one token and renew
-- it once.
--
--   GET /track/{id}           the track
--   GET /tracks?ids=a,b,...   the tracks, in the order asked
--   GET /album/{id}/tracks    every track of the album (all pages)
--   GET /search?q=...         tracks matching q (limit, market optional)
--   GET /health               200 {"token_expires_in": s} once a token is held, else 503
--
-- Settings come from the environment (nginx.conf lists them with `env`):
-- the credentials, SPOTIFY_API_BASE and SPOTIFY_TOKEN_URL (read by the
-- module itself) and SPOTIFY_TIMEOUT (seconds per attempt, default 5).
local spotify = require "spotify"
local cjson = require "cjson.safe"

-- luacheck: globals ngx (a handler sets ngx.status and ngx.header)

local api = {}

local client -- made on first use in each worker, after nginx forked it

local function get_client()
  if not client then
    client = spotify.client {
      cache = spotify.cache.shdict(ngx.shared.spotify_tokens),
      -- Answers every worker reuses while Spotify's Cache-Control max-age
      -- allows (search results, briefly); `ttl = {track = 86400}` would keep
      -- tracks a day. Their dict holds answers only: a new answer evicts the
      -- least recently used one, never the token or a 429 penalty.
      responses = spotify.responses {
        store = spotify.cache.shdict(ngx.shared.spotify_answers, { answers_only = true }),
      },
      metrics = ngx.shared.spotify_metrics, -- counters for GET /metrics
      timeout = tonumber(os.getenv "SPOTIFY_TIMEOUT" or "") or 5,
    }
  end
  return client
end

-- Error kinds as HTTP statuses of this API.
local STATUS = {
  invalid_argument = 400, not_found = 404, rate_limited = 429, timeout = 504,
}

local function reply(status, value)
  ngx.status = status
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode(value))
  return ngx.exit(status)
end

local function answer(value, err)
  if value == nil then
    if err.kind == "rate_limited" and err.retry_after then
      -- whole seconds, rounded up: a client that waits this long finds Spotify ready
      ngx.header["Retry-After"] = tostring(math.ceil(err.retry_after))
    end
    return reply(STATUS[err.kind] or 502, {
      error = { kind = err.kind, status = err.status, message = err.message, retry_after = err.retry_after },
    })
  end
  return reply(200, value)
end

local function split(list)
  local out = {}
  for item in (list or ""):gmatch "[^,]+" do out[#out + 1] = item end
  return out
end

--- GET /track/{id}
function api.track()
  return answer(get_client():track(ngx.var.spotify_id))
end

--- GET /tracks?ids=a,b,c
function api.tracks()
  return answer(get_client():tracks(split(ngx.var.arg_ids)))
end

--- GET /album/{id}/tracks: every page, as one array.
function api.album_tracks()
  local c = get_client()
  local first, err = c:album_tracks(ngx.var.spotify_id, { limit = 50 })
  if not first then return answer(nil, err) end
  return answer(c:all(first))
end

--- GET /search?q=...&limit=&market=
function api.search()
  local args = ngx.req.get_uri_args()
  local q = type(args.q) == "string" and args.q or nil
  if not q or q == "" then
    return reply(400, { error = { kind = "invalid_argument", message = "q is required" } })
  end
  local found, err = get_client():search(q, {
    type = "track", limit = tonumber(args.limit) or 10, market = args.market,
  })
  if not found then return answer(nil, err) end
  return answer(found.tracks)
end

--- GET /health
function api.health()
  local token, left = get_client():access_token()
  if not token then
    return reply(503, { error = { kind = left.kind, status = left.status, message = left.message } })
  end
  return reply(200, { token_expires_in = math.floor(left) })
end

--- From init_worker, in a timer: the token before the first request.
function api.warm()
  local token, err = get_client():access_token()
  if not token then ngx.log(ngx.WARN, "spotify: warm-up: ", tostring(err)) end
end

return api
