--- The gateway of nginx.conf next to this file: Spotify's catalog under
-- /v1 for callers that hold no secret (games, apps, services in other
-- languages), with the app's credentials and token in this server alone.
--
-- Settings from the environment (nginx.conf lists them with `env`):
--   SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET   the app's credentials
--   SPOTIFY_API_BASE, SPOTIFY_TOKEN_URL        another Spotify (the bundled fake)
--   SPOTIFY_REDIS=host:port                    a fleet of gateways shares one token,
--                                              one rate limit and one response cache
--   SPOTIFY_GATEWAY_KEYS=a,b                   callers must send one as X-Api-Key
--   SPOTIFY_BATCH_WINDOW=s                     seconds single lookups wait for others
--                                              (default 0.005; 0: off)
--   SPOTIFY_RATE_LIMIT=n                       requests per 30 s for the whole app
--                                              (default 150; 0: off)
local spotify = require "spotify"

-- luacheck: globals ngx

local function redis_cache()
  local where = os.getenv "SPOTIFY_REDIS"
  if not where or where == "" then return nil end
  local host, port = where:match "^([^:]+):(%d+)$"
  assert(host, "SPOTIFY_REDIS must be host:port")
  -- One connection per command from nginx's pool: a cosocket belongs to
  -- the request that opened it, so none is kept across requests.
  return spotify.cache.redis(nil, { connect = function()
    local redis = require "nginx.redis" -- Debian's lua-nginx-redis; OpenResty: "resty.redis"
    local conn = redis:new()
    conn:set_timeout(1000)
    local ok, err = conn:connect(host, tonumber(port))
    if not ok then return nil, err end
    return conn
  end })
end

local function keys()
  local list = os.getenv "SPOTIFY_GATEWAY_KEYS"
  if not list or list == "" then return nil end
  local allowed = {}
  for key in list:gmatch "[^,%s]+" do allowed[key] = true end
  return function(key) return allowed[key] == true end
end

local shared = redis_cache()
local window = tonumber(os.getenv "SPOTIFY_BATCH_WINDOW" or "") or 0.005
local per_30s = tonumber(os.getenv "SPOTIFY_RATE_LIMIT" or "") or 150

local gw = spotify.gateway {
  -- the token and the 429 penalty: every worker of this server, or with
  -- Redis every gateway of the fleet
  cache = shared or spotify.cache.shdict(ngx.shared.spotify_tokens),
  responses = spotify.responses {
    store = shared or spotify.cache.shdict(ngx.shared.spotify_answers),
    ttl = { default = 0, track = 86400, tracks = 86400, album = 86400, albums = 86400,
      artist = 3600, artists = 3600, search = 300 },
    lru = 2000,
    lru_bytes = 8 * 1024 * 1024, -- each worker's answers in memory: the dict holds the rest
    stale_if_error = 3600,
  },
  batch_window = window > 0 and window or nil,
  -- Spotify counts an app's requests over 30 s; stay below it together
  rate_limit = per_30s > 0 and { requests = per_30s, window = 30 } or nil,
  metrics = ngx.shared.spotify_metrics,
  timeout = 5,
  keys = keys(),
}

return {
  serve = function() gw:serve() end,
  -- from init_worker, in a timer: the token before the first request
  warm = function()
    local token, err = gw:client_of():access_token()
    if not token then ngx.log(ngx.WARN, "spotify gateway: warm-up: ", tostring(err)) end
  end,
}
