--- Prometheus text exposition (format 0.0.4) of the clients' counters.
-- Counting happens in the C core (client:stats() and the per-outcome and
-- request-time counters of core.metrics); this file only names them.
-- Two sources: every live client of the process, or a shared dict
-- (`metrics = ngx.shared.NAME`) that clients of every nginx worker add
-- their counts to after each call.
-- @module spotify.prometheus
local core = require "spotify.core"

local stats_of, metrics_of, env_of, is_closed = core.stats, core.metrics, core.env, core.is_closed
local concat, format, floor, sort, pairs, type = table.concat, string.format, math.floor, table.sort, pairs, type

local M = {}

-- Upper bounds of the request-time buckets, decided where they are counted.
local BUCKETS = core.duration_buckets

-- The counter families, one row each: a row's samples come from one field
-- of the counters (`field`) or, with a label, one field per label value.
-- A family whose fields no client has is left out.
local COUNTERS = {
  { name = "spotify_requests_total", help = "API requests by outcome (token requests not included).",
    label = "outcome", fields = {
      { "2xx", "outcome_2xx" }, { "4xx", "outcome_4xx" }, { "429", "outcome_429" },
      { "5xx", "outcome_5xx" }, { "network", "outcome_network" }, { "timeout", "outcome_timeout" },
    } },
  { name = "spotify_token_fetches_total", help = "Tokens fetched from the token endpoint.",
    field = "token_fetches" },
  { name = "spotify_retries_total", help = "Requests repeated after a network error, 5xx or 429.",
    field = "retries" },
  { name = "spotify_retry_wait_seconds_total", help = "Seconds waited (backoff or Retry-After) before retries.",
    field = "retry_wait_s" },
  { name = "spotify_rate_limited_waits_total", help = "Waits for the app's rate limit (429 penalty or pacing).",
    field = "rate_limited_waits" },
  { name = "spotify_rate_limited_wait_seconds_total", help = "Seconds waited for the app's rate limit.",
    field = "rate_limited_wait_s" },
  { name = "spotify_response_hits_total", help = "Calls answered from the response cache, by tier.",
    label = "tier", fields = {
      { "process", "response_hits" }, { "shared", "response_shared_hits" }, { "stale", "response_stale" },
      { "revalidated", "response_revalidated" }, -- expired answers a 304 renewed
    } },
  { name = "spotify_coalesced_total", help = "Calls that rode on an identical request in flight.",
    field = "coalesced" },
  { name = "spotify_batched_total", help = "Lookups that went out inside a batch request.",
    field = "batched" },
}

local HISTOGRAM = { name = "spotify_request_duration_seconds", help = "API request times in seconds." }

-- Every field the exposition reads: what a client adds to a shared dict.
local FIELDS = {}
for _, row in ipairs(COUNTERS) do
  if row.field then FIELDS[#FIELDS + 1] = row.field end
  for _, f in ipairs(row.fields or {}) do FIELDS[#FIELDS + 1] = f[2] end
end
for b = 1, #BUCKETS do FIELDS[#FIELDS + 1] = "duration_" .. b end
FIELDS[#FIELDS + 1] = "duration_inf"
FIELDS[#FIELDS + 1] = "duration_sum"

-- Every client of the process, weakly: tracking never keeps one alive,
-- and nothing is kept per client here (its app name lives in its env).
local live = setmetatable({}, { __mode = "k" })

--- Count `client` in the process-wide exposition.
function M.track(client)
  live[client] = true
end

-- A client's counters: the stats and the core's metrics in one table.
local function counters(client)
  local t = stats_of(client)
  for k, v in pairs(metrics_of(client)) do t[k] = v end
  return t
end

local function add(apps, app, fields)
  local sum = apps[app]
  if not sum then
    sum = {}
    apps[app] = sum
  end
  for i = 1, #FIELDS do
    local f = FIELDS[i]
    local v = fields[f]
    if v ~= nil then sum[f] = (sum[f] or 0) + v end
  end
end

-- Shared dict keys: "spotify\t" .. field .. "\t" .. app (fields hold no tab).
local function key(field, app)
  return "spotify\t" .. field .. "\t" .. app
end

--- Add what `client` counted since its last flush to its shared dict
-- (`env.metrics`). Runs after each call of a client made with `metrics`;
-- never raises into the call.
function M.flush(client, env)
  local dict, app = env.metrics, env.app
  local ok, now = pcall(counters, client)
  if not ok then return end
  -- what reached the dict so far, field by field: a failed incr (a full
  -- dict) is tried again at the next flush, never lost
  local last = env.flushed or {}
  env.flushed = last
  for i = 1, #FIELDS do
    local f = FIELDS[i]
    local v = now[f]
    if v ~= nil then
      local before = last[f]
      -- the first flush makes every key exist, so the families show at 0
      if before == nil or v ~= before then
        local done, added = pcall(dict.incr, dict, key(f, app), v - (before or 0), 0)
        if done and added then last[f] = v end
      end
    end
  end
end

-- A gateway's requests (spotify.gateway) by path kind and outcome, under
-- fields "gateway:<kind>:<outcome>": in the shared dict of the gateway's
-- client (`metrics`), else in this process (by app).
local GATEWAY = { name = "spotify_gateway_requests_total",
  help = "Requests the gateway answered, by path kind (the catalog method, or other) and outcome"
    .. " (2xx, 4xx, 429, 5xx as answered, refused by the gateway itself)." }
local gateway_counts = {}

--- Count one request a gateway answered.
function M.gateway(env, kind, outcome)
  local field, app = "gateway:" .. kind .. ":" .. outcome, env.app
  local dict = env.metrics
  if dict then
    pcall(dict.incr, dict, key(field, app), 1, 0)
    return
  end
  local t = gateway_counts[app] or {}
  gateway_counts[app] = t
  t[field] = (t[field] or 0) + 1
end

local function from_clients()
  local apps = {}
  for app, t in pairs(gateway_counts) do
    apps[app] = apps[app] or {}
    for f, v in pairs(t) do apps[app][f] = v end
  end
  for client in pairs(live) do
    if not is_closed(client) then
      local env = env_of(client)
      if env then add(apps, env.app, counters(client)) end
    end
  end
  return apps
end

local function from_dict(dict)
  local apps = {}
  for _, k in ipairs(dict:get_keys(0)) do
    local field, app = k:match "^spotify\t([^\t]+)\t(.*)$"
    local v = field and dict:get(k)
    if type(v) == "number" then
      local sum = apps[app]
      if not sum then
        sum = {}
        apps[app] = sum
      end
      sum[field] = (sum[field] or 0) + v
    end
  end
  return apps
end

-- A sample value: integers as integers, other numbers exactly.
local function number(v)
  if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  local s = format("%.15g", v)
  if tonumber(s) ~= v then s = format("%.17g", v) end
  return s
end

local ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }

local function labels(app, name, value)
  local s = 'app="' .. app:gsub('[\\"\n]', ESCAPES) .. '"'
  if name then s = s .. "," .. name .. '="' .. value .. '"' end
  return "{" .. s .. "}"
end

local function header(out, name, help, kind)
  out[#out + 1] = "# HELP " .. name .. " " .. help
  out[#out + 1] = "# TYPE " .. name .. " " .. kind
end

local function has(apps, names, fields)
  for i = 1, #names do
    for j = 1, #fields do
      if apps[names[i]][fields[j]] ~= nil then return true end
    end
  end
  return false
end

local function counter_family(out, apps, names, row)
  local pairs_of = row.fields or { { nil, row.field } }
  local fields = {}
  for i = 1, #pairs_of do fields[i] = pairs_of[i][2] end
  if not has(apps, names, fields) then return end
  header(out, row.name, row.help, "counter")
  for _, app in ipairs(names) do
    for _, p in ipairs(pairs_of) do
      local v = apps[app][p[2]]
      if v ~= nil then out[#out + 1] = row.name .. labels(app, row.label, p[1]) .. " " .. number(v) end
    end
  end
end

local function histogram(out, apps, names)
  if not has(apps, names, { "duration_sum" }) then return end
  local name = HISTOGRAM.name
  header(out, name, HISTOGRAM.help, "histogram")
  for _, app in ipairs(names) do
    local f = apps[app]
    if f.duration_sum ~= nil then
      local count = 0
      for b = 1, #BUCKETS do
        count = count + (f["duration_" .. b] or 0)
        out[#out + 1] = name .. "_bucket" .. labels(app, "le", number(BUCKETS[b])) .. " " .. number(count)
      end
      count = count + (f.duration_inf or 0)
      out[#out + 1] = name .. "_bucket" .. labels(app, "le", "+Inf") .. " " .. number(count)
      out[#out + 1] = name .. "_sum" .. labels(app) .. " " .. number(f.duration_sum)
      out[#out + 1] = name .. "_count" .. labels(app) .. " " .. number(count)
    end
  end
end

local function gateway_family(out, apps, names)
  local lines = {}
  for _, app in ipairs(names) do
    local samples = {}
    for f, v in pairs(apps[app]) do
      local kind, outcome = f:match "^gateway:([^:]+):(.+)$"
      if kind then
        samples[#samples + 1] = GATEWAY.name .. labels(app, "path", kind):sub(1, -2) .. ',outcome="'
          .. outcome .. '"} ' .. number(v)
      end
    end
    sort(samples)
    for i = 1, #samples do lines[#lines + 1] = samples[i] end
  end
  if #lines == 0 then return end
  header(out, GATEWAY.name, GATEWAY.help, "counter")
  for i = 1, #lines do out[#out + 1] = lines[i] end
end

local function render(apps)
  local names = {}
  for app in pairs(apps) do names[#names + 1] = app end
  sort(names)
  local out = {}
  for _, row in ipairs(COUNTERS) do counter_family(out, apps, names, row) end
  histogram(out, apps, names)
  gateway_family(out, apps, names)
  if #out == 0 then return "" end
  out[#out + 1] = ""
  return concat(out, "\n")
end

--- The exposition text of every live client of the process (no argument),
-- or of the counters clients made with `metrics = dict` keep in `dict`.
function M.text(source)
  if source == nil then return render(from_clients()) end
  local ok, get_keys = pcall(function() return source.get_keys end)
  if not ok or get_keys == nil then
    error("spotify.prometheus: expected a shared dict (ngx.shared.NAME) or nothing, got " .. type(source), 3)
  end
  return render(from_dict(source))
end

M.FIELDS = FIELDS

return M
