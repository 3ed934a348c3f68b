-- spotify.prometheus: the text exposition format (0.0.4) checked line by
-- line against its grammar, and its counts against stats() and the fake's
-- log: in a process, and across two nginx workers through a shared dict.
-- Also the `language` option (Accept-Language on API requests only).
local cjson = require "cjson"
local spotify = require "spotify"
local fake = require "spec.support.fake"
local nginx = require "spec.support.nginx"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"
local UNKNOWN = "UnknownAAAAAAAAAAAAAAA"

-- The i-th of distinct IDs the fake knows (or, unknown, answers 404 for):
-- identical requests in flight together are coalesced into one.
local function known(i) return ("T%021d"):format(i) end
local function unknown(i) return ("Unknown%015d"):format(i) end
local OUTCOMES = { "2xx", "4xx", "429", "5xx", "network", "timeout" }

-- The Accept-Language the fake saw (JSON null when none).
local function language_of(entry)
  if entry.accept_language == cjson.null then return nil end
  return entry.accept_language
end

-- ---- a parser of the exposition format ----------------------------------

local NAME = "^[%a_:][%w_:]*"
local LABEL = "^[%a_][%w_]*"

local function parse_value(s)
  if s == "+Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if s == "NaN" then return 0 / 0 end
  assert(s:match "^[-+]?%d*%.?%d+$" or s:match "^[-+]?%d+%.?%d*$" or s:match "^[-+]?%d*%.?%d+[eE][-+]?%d+$",
    "not a float: " .. s)
  return assert(tonumber(s))
end

-- label set "{a="x",b="y"}" at position i of line -> labels table, next position
local function parse_labels(line, i)
  local labels = {}
  if line:sub(i, i) ~= "{" then return labels, i end
  i = i + 1
  while line:sub(i, i) ~= "}" do
    local name = assert(line:sub(i):match(LABEL), "bad label name in: " .. line)
    i = i + #name
    assert(line:sub(i, i + 1) == '="', "expected =\" in: " .. line)
    i = i + 2
    local value = {}
    while true do
      local ch = line:sub(i, i)
      assert(ch ~= "" and ch ~= "\n", "unterminated label value in: " .. line)
      if ch == '"' then break end
      if ch == "\\" then
        local nx = line:sub(i + 1, i + 1)
        local esc = ({ ["\\"] = "\\", ['"'] = '"', n = "\n" })[nx]
        assert(esc, "bad escape in: " .. line)
        value[#value + 1] = esc
        i = i + 2
      else
        value[#value + 1] = ch
        i = i + 1
      end
    end
    i = i + 1
    assert(labels[name] == nil, "label repeated in: " .. line)
    labels[name] = table.concat(value)
    if line:sub(i, i) == "," then i = i + 1 end
  end
  return labels, i + 1
end

local function family_of(name, types)
  if types[name] then return name end
  for _, suffix in ipairs { "_bucket", "_sum", "_count" } do
    local base = name:sub(1, -#suffix - 1)
    if name:sub(-#suffix) == suffix and types[base] == "histogram" then return base end
  end
  return name
end

local function series_key(name, labels)
  local keys = {}
  for k in pairs(labels) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = { name }
  for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. labels[k] end
  return table.concat(out, "\0")
end

-- Every line must be a HELP, a TYPE or a sample (the format would skip
-- empty lines and other comments; this text has none); HELP and TYPE once per
-- family, before its samples, its samples together; no series twice;
-- histograms cumulative up to +Inf, which equals _count. Returns
-- {family = {type =, help =, samples = {{name, labels, value}}}}.
local function parse(text)
  assert(text == "" or text:sub(-1) == "\n", "the text ends with a newline")
  local families, types, seen, order, closed = {}, {}, {}, {}, {}
  local current
  local function family(name)
    if not families[name] then
      families[name] = { samples = {} }
      order[#order + 1] = name
    end
    if current ~= name then
      assert(not closed[name], "samples of " .. name .. " are not together")
      if current then closed[current] = true end
      current = name
    end
    return families[name]
  end
  for line in text:gmatch "([^\n]*)\n" do
    if line:match "^#" then
      local what, name, rest = line:match "^# (%u+) ([%a_:][%w_:]*) (.*)$"
      if what == "HELP" then
        local f = family(name)
        assert(f.help == nil, "HELP twice for " .. name)
        assert(#f.samples == 0, "HELP after samples of " .. name)
        f.help = rest
      elseif what == "TYPE" then
        local f = family(name)
        assert(f.type == nil, "TYPE twice for " .. name)
        assert(#f.samples == 0, "TYPE after samples of " .. name)
        assert(({ counter = 1, gauge = 1, histogram = 1, summary = 1, untyped = 1 })[rest], "bad TYPE " .. rest)
        f.type, types[name] = rest, rest
      else
        assert(line:match "^# " == nil or what == nil, "malformed comment: " .. line)
      end
    else
      local name = assert(line:match(NAME), "not a sample line: " .. ("%q"):format(line))
      local labels, i = parse_labels(line, #name + 1)
      local value_text, timestamp = line:sub(i):match "^ (%S+)( ?%-?%d*)$"
      assert(value_text, "bad value part in: " .. line)
      assert(timestamp == "" or timestamp:match "^ %-?%d+$", "bad timestamp in: " .. line)
      local fam = family_of(name, types)
      local f = family(fam)
      assert(f.type, "sample before TYPE of " .. fam)
      local key = series_key(name, labels)
      assert(not seen[key], "series twice: " .. line)
      seen[key] = true
      f.samples[#f.samples + 1] = { name = name, labels = labels, value = parse_value(value_text) }
    end
  end
  for name, f in pairs(families) do
    if f.type == "histogram" then
      local by = {}
      for _, s in ipairs(f.samples) do
        local copy = {}
        for k, v in pairs(s.labels) do if k ~= "le" then copy[k] = v end end
        local k = series_key("", copy)
        by[k] = by[k] or { buckets = {} }
        if s.name == name .. "_bucket" then
          local b = by[k].buckets
          local le = parse_value(assert(s.labels.le, "bucket without le"))
          if #b > 0 then
            assert(le > b[#b].le, "le not increasing in " .. name)
            assert(s.value >= b[#b].value, "buckets not cumulative in " .. name)
          end
          b[#b + 1] = { le = le, value = s.value }
        elseif s.name == name .. "_sum" then
          by[k].sum = s.value
        elseif s.name == name .. "_count" then
          by[k].count = s.value
        else
          error("unexpected sample " .. s.name .. " in histogram " .. name)
        end
      end
      for _, h in pairs(by) do
        local b = h.buckets
        assert(#b > 0 and b[#b].le == math.huge, "histogram " .. name .. " lacks +Inf")
        assert.equal(b[#b].value, h.count)
        assert.is_number(h.sum)
      end
    end
  end
  for name, f in pairs(families) do
    assert(f.help and f.type, "HELP and TYPE for " .. name)
  end
  return families
end

-- The value of one series, or nil.
local function value(families, family, name, labels)
  local f = families[family]
  if not f then return nil end
  for _, s in ipairs(f.samples) do
    if s.name == name then
      local all = true
      for k, v in pairs(labels) do
        if s.labels[k] ~= v then all = false end
      end
      if all then return s.value end
    end
  end
end

local function requests_by_outcome(families, app)
  local out, total = {}, 0
  for _, o in ipairs(OUTCOMES) do
    out[o] = value(families, "spotify_requests_total", "spotify_requests_total", { app = app, outcome = o })
    total = total + (out[o] or 0)
  end
  return out, total
end

-- ---- the parser itself --------------------------------------------------

describe("the exposition parser of this spec", function()
  it("refuses what the format does not allow", function()
    for _, text in ipairs {
      "x 1",                                                            -- no newline at the end
      "# TYPE a counter\n# TYPE a counter\na 1\n",                      -- TYPE twice
      "a 1\n",                                                          -- no TYPE
      "# HELP a h\n# TYPE a counter\na{b=\"x} 1\n",                     -- unterminated
      "# HELP a h\n# TYPE a counter\na{b=\"\\q\"} 1\n",                 -- bad escape
      "# HELP a h\n# TYPE a counter\na 1\na 2\n",                       -- series twice
      "# HELP a h\n# TYPE a counter\na one\n",                          -- not a number
      "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",  -- no +Inf
    } do
      assert.has_error(function() parse(text) end)
    end
  end)
end)

-- ---- options ------------------------------------------------------------

describe("options language and metrics", function()
  local creds = { client_id = "id", client_secret = "secret" }
  local function with(k, v)
    return { client_id = creds.client_id, client_secret = creds.client_secret, [k] = v }
  end

  it("takes a language tag and a shared dict", function()
    spotify.client(with("language", "es-ES")):close()
    spotify.client(with("language", "de, en;q=0.5")):close()
    local dict = { get = function() end, incr = function() end, get_keys = function() return {} end }
    spotify.client(with("metrics", dict)):close()
  end)

  it("rejects control characters, empty tags and other types, naming the option", function()
    for _, v in ipairs { "de\r\nX-Injected: 1", "de\n", "", 5, "de\0" } do
      assert.has_error(function() spotify.client(with("language", v)) end)
      local ok, err = pcall(spotify.client, with("language", v))
      assert.is_false(ok)
      assert.matches("option 'language' must be a language tag", err, 1, true)
    end
  end)

  it("rejects a metrics value that is not a shared dict", function()
    for _, v in ipairs { "spotify_metrics", 3, {}, { incr = function() end } } do
      local ok, err = pcall(spotify.client, with("metrics", v))
      assert.is_false(ok)
      assert.matches("option 'metrics' must be a shared dict", err, 1, true)
    end
  end)

  it("raises for a source of spotify.prometheus that is not a shared dict", function()
    assert.has_error(function() spotify.prometheus("x") end,
      "spotify.prometheus: expected a shared dict (ngx.shared.NAME) or nothing, got string")
    assert.has_error(function() spotify.prometheus({}) end)
  end)
end)

-- ---- Accept-Language with libcurl ---------------------------------------

describe("option language with libcurl", function()
  local f
  setup(function() f = fake.start() end)
  teardown(function() if f then f:stop() end end)

  it("sends Accept-Language on API requests (blocking and multi), never on token requests", function()
    f:reset()
    local c = spotify.client(fake.client_opts(f, { language = "es-ES", batch = false }))
    assert.is_table(c:track(ID))
    local list = assert(c:tracks { known(1), known(2), known(3) })
    assert.equal(3, #list)
    c:close()
    local api, tokens = 0, 0
    for _, e in ipairs(f:log()) do
      if e.path == "/api/token" then
        tokens = tokens + 1
        assert.is_nil(language_of(e))
      else
        api = api + 1
        assert.equal("es-ES", language_of(e))
      end
    end
    assert.equal(1, tokens)
    assert.equal(4, api)
  end)

  it("sends none without the option", function()
    f:reset()
    local c = spotify.client(fake.client_opts(f))
    assert.is_table(c:track(ID))
    c:close()
    for _, e in ipairs(f:log()) do assert.is_nil(language_of(e)) end
  end)
end)

-- ---- in a process ---------------------------------------------------------

-- The calls whose outcomes the fake steers, and what they make.
local function steered_calls(f, c)
  f:faults {}
  for _ = 1, 3 do assert.is_table(c:track(ID)) end
  local _, err = c:track(UNKNOWN)
  assert.equal("not_found", err.kind)
  f:faults { { path = "/v1/tracks/", status = 500, times = 1 } }
  assert.is_table(c:track(ID))
  f:faults { { path = "/v1/tracks/", status = 429, headers = { ["Retry-After"] = "0" }, times = 1 } }
  assert.is_table(c:track(ID))
  f:faults { { path = "/v1/tracks/", action = "truncate", times = 2 } }
  _, err = c:track(ID)
  assert.equal("network", err.kind)
  f:faults { { path = "/v1/tracks/", delay = 1, times = 2 } }
  _, err = c:track(ID)
  assert.equal("timeout", err.kind)
  f:faults {}
  local list = assert(c:tracks { known(1), known(2) })
  assert.equal(2, #list)
  -- 2xx: 3 + 1 + 1 + 2 (plural, batch = false); each fault adds its own
  return { ["2xx"] = 7, ["4xx"] = 1, ["429"] = 1, ["5xx"] = 1, network = 2, timeout = 2 }
end

local function check_against_stats(families, app, stats, expected, token_requests)
  local by, total = requests_by_outcome(families, app)
  assert.same(expected, by)
  assert.equal(stats.requests - token_requests, total)
  assert.equal(stats.token_fetches, value(families, "spotify_token_fetches_total", "spotify_token_fetches_total",
    { app = app }))
  assert.equal(stats.retries, value(families, "spotify_retries_total", "spotify_retries_total", { app = app }))
  assert.equal(stats.rate_limited_waits, value(families, "spotify_rate_limited_waits_total",
    "spotify_rate_limited_waits_total", { app = app }))
  assert.equal(stats.rate_limited_wait_s, value(families, "spotify_rate_limited_wait_seconds_total",
    "spotify_rate_limited_wait_seconds_total", { app = app }))
  assert.equal(stats.retry_wait_s, value(families, "spotify_retry_wait_seconds_total",
    "spotify_retry_wait_seconds_total", { app = app }))
  local h = "spotify_request_duration_seconds"
  assert.equal(total, value(families, h, h .. "_count", { app = app }))
  assert.equal(total, value(families, h, h .. "_bucket", { app = app, le = "+Inf" }))
  assert.is_true(value(families, h, h .. "_sum", { app = app }) > 0)
  -- the two timeouts took at least 0.2 s each: above the 0.1 s bucket
  assert.is_true(value(families, h, h .. "_bucket", { app = app, le = "0.1" }) <= total - 2)
end

describe("spotify.prometheus() in a process", function()
  local f
  setup(function() f = fake.start() end)
  teardown(function() if f then f:stop() end end)

  it("covers every live client, counts what stats() counts, by outcome", function()
    f:reset()
    local c = spotify.client(fake.client_opts(f, { max_retries = 1, timeout = 0.2, batch = false }))
    local expected = steered_calls(f, c)
    local families = parse(spotify.prometheus())
    local token_requests = #f:log_for "/api/token"
    assert.equal(1, token_requests)
    check_against_stats(families, "test-id", c:stats(), expected, token_requests)
    assert.equal("counter", families.spotify_requests_total.type)
    assert.equal("histogram", families.spotify_request_duration_seconds.type)
    -- the API requests the fake saw, all counted
    assert.equal(#f:log_for "/v1/", expected["2xx"] + expected["4xx"] + expected["429"] + expected["5xx"]
      + expected.network + expected.timeout)
    -- a second client of the same app adds to the same series
    local d = spotify.client(fake.client_opts(f))
    assert.is_table(d:track(ID))
    local again = parse(spotify.prometheus())
    assert.equal(expected["2xx"] + 1, value(again, "spotify_requests_total", "spotify_requests_total",
      { app = "test-id", outcome = "2xx" }))
    c:close()
    d:close()
    -- closed clients are no longer covered
    assert.is_nil(value(parse(spotify.prometheus()), "spotify_requests_total", "spotify_requests_total",
      { app = "test-id", outcome = "2xx" }))
  end)

  it("escapes label values and never shows the secret", function()
    local id = 'we"ird\\id' -- quote and backslash (options refuse control characters)
    local c = spotify.client { client_id = id, client_secret = "s3cr3t-value", api_base = f.api_base,
      token_url = f.token_url }
    local text = spotify.prometheus()
    assert.is_nil(text:find("s3cr3t-value", 1, true))
    assert.truthy(text:find('app="we\\"ird\\\\id"', 1, true))
    assert.equal(0, value(parse(text), "spotify_retries_total", "spotify_retries_total", { app = id }))
    c:close()
  end)

  it("drops a collected client (the registry holds clients weakly)", function()
    local held = setmetatable({ spotify.client { client_id = "gone-soon", client_secret = "x" } }, { __mode = "v" })
    assert.truthy(spotify.prometheus():find('app="gone-soon"', 1, true))
    held[2] = true -- the client's only reference was the weak one
    collectgarbage()
    collectgarbage()
    assert.is_nil(spotify.prometheus():find('app="gone-soon"', 1, true))
  end)
end)

-- A shared dict as ngx.shared's, for the process: get, incr (with init), get_keys.
local function memory_dict()
  local data = {}
  return {
    get = function(_, k) return data[k] end,
    incr = function(_, k, v, init)
      if data[k] == nil then
        if init == nil then return nil, "not found" end
        data[k] = init
      end
      data[k] = data[k] + v
      return data[k]
    end,
    get_keys = function()
      local out = {}
      for k in pairs(data) do out[#out + 1] = k end
      return out
    end,
  }
end

describe("option metrics (a shared dict) in a process", function()
  local f
  setup(function() f = fake.start() end)
  teardown(function() if f then f:stop() end end)

  it("adds each call's counts to the dict: the same as stats() and as spotify.prometheus()", function()
    f:reset()
    local dict = memory_dict()
    local c = spotify.client(fake.client_opts(f, { max_retries = 1, timeout = 0.2, batch = false, metrics = dict }))
    local expected = steered_calls(f, c)
    local shared = parse(spotify.prometheus(dict))
    check_against_stats(shared, "test-id", c:stats(), expected, #f:log_for "/api/token")
    local token = c:access_token()
    assert.is_string(token)
    c:close()
  end)

  it("shows the response cache, coalescing and batching families from their counters", function()
    local dict = memory_dict()
    for field, n in pairs { response_hits = 4, response_shared_hits = 3, response_stale = 2, coalesced = 5,
      batched = 6, response_revalidated = 7 } do
      dict:incr("spotify\t" .. field .. "\tapp-1", n, 0)
    end
    local families = parse(spotify.prometheus(dict))
    local hits = "spotify_response_hits_total"
    assert.equal(4, value(families, hits, hits, { app = "app-1", tier = "process" }))
    assert.equal(3, value(families, hits, hits, { app = "app-1", tier = "shared" }))
    assert.equal(2, value(families, hits, hits, { app = "app-1", tier = "stale" }))
    assert.equal(7, value(families, hits, hits, { app = "app-1", tier = "revalidated" }))
    assert.equal(5, value(families, "spotify_coalesced_total", "spotify_coalesced_total", { app = "app-1" }))
    assert.equal(6, value(families, "spotify_batched_total", "spotify_batched_total", { app = "app-1" }))
    assert.is_nil(families.spotify_requests_total) -- no client counted requests into this dict
    assert.equal("", spotify.prometheus(memory_dict()))
  end)
end)

-- ---- nginx, two workers, one shared dict ------------------------------------

local APP = [=[
local spotify = require "spotify"
local cjson = require "cjson"
local o = require "spec_options"
local app = {}
local client

function app.call()
  if not client then
    o.metrics = ngx.shared.spotify_metrics
    client = spotify.client(o)
  end
  local value, err = client:track(ngx.var.arg_id)
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode { ok = value ~= nil, kind = err and err.kind, pid = ngx.worker.pid() })
end

return app
]=]

local SERVER = [[
    location = /call { content_by_lua_block { require("spec_app").call() } }
    location = /metrics {
      default_type text/plain;
      content_by_lua_block { ngx.print(require("spotify").prometheus(ngx.shared.spotify_metrics)) }
    }
]]

local function start_nginx(opts)
  local lines = {}
  for k, v in pairs(opts) do lines[#lines + 1] = ("[%q] = %q"):format(k, v) end
  return nginx.start {
    workers = 2,
    http = table.concat({
      nginx.package_paths(),
      "lua_shared_dict spotify_metrics 1m;",
      "lua_socket_log_errors off;",
      "init_by_lua_block { require 'spotify' }",
    }, "\n  "),
    server = SERVER,
    files = { ["spec_app.lua"] = APP, ["spec_options.lua"] = "return { " .. table.concat(lines, ", ") .. " }" },
  }
end

describe("spotify.prometheus(ngx.shared.NAME) across two nginx workers", function()
  local f, server
  setup(function()
    nginx.check()
    f = fake.start()
    local o = fake.client_opts(f, { language = "de" })
    server = start_nginx(o)
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("counts every worker's requests as the fake saw them, with Accept-Language on API requests", function()
    f:reset()
    local paths = {}
    for i = 1, 100 do paths[i] = "/call?id=" .. (i % 10 == 0 and unknown(i) or known(i)) end
    local results = server:parallel(paths, 20)
    local pids, workers = {}, 0
    for i = 1, 100 do
      assert.equal(200, results[i].status, results[i].body)
      local reply = cjson.decode(results[i].body)
      assert.equal(i % 10 ~= 0, reply.ok)
      if not pids[reply.pid] then pids[reply.pid], workers = true, workers + 1 end
    end
    assert.equal(2, workers) -- both workers served requests
    local status, body = server:get "/metrics"
    assert.equal(200, status)
    local families = parse(body)
    local by, total = requests_by_outcome(families, "test-id")
    local api, tokens = f:log_for "/v1/tracks/", f:log_for "/api/token"
    assert.equal(#api, total)
    assert.equal(100, total)
    assert.equal(90, by["2xx"])
    assert.equal(10, by["4xx"])
    assert.equal(#tokens, value(families, "spotify_token_fetches_total", "spotify_token_fetches_total",
      { app = "test-id" }))
    local h = "spotify_request_duration_seconds"
    assert.equal(100, value(families, h, h .. "_count", { app = "test-id" }))
    for _, e in ipairs(api) do assert.equal("de", language_of(e)) end
    for _, e in ipairs(tokens) do assert.is_nil(language_of(e)) end
    assert.same({}, server:complaints())
  end)
end)

describe("examples/nginx serves /metrics", function()
  local f, server
  setup(function()
    nginx.check()
    f = fake.start { tls = true }
    local conf = assert(io.open(nginx.root .. "/examples/nginx/nginx.conf")):read "*a"
    local api = assert(io.open(nginx.root .. "/examples/nginx/spotify_api.lua")):read "*a"
    -- as spec/nginx_spec.lua runs it: only where things are changes
    conf = conf:gsub("/usr/local/share/lua/5%.1", "${PREFIX}/lua")
      :gsub("/usr/local/lib/lua/5%.1", "${PREFIX}/lib")
      :gsub("lua_ssl_trusted_certificate [^;]+;", "lua_ssl_trusted_certificate ${PREFIX}/ca.pem;")
      :gsub("listen 8080;", "listen 127.0.0.1:${PORT};")
      :gsub("worker_processes auto;", "worker_processes 2;")
    server = nginx.start {
      conf = conf, files = { ["spotify_api.lua"] = api, ["ca.pem"] = assert(io.open(f.ca_file)):read "*a" },
      env = { SPOTIFY_CLIENT_ID = "test-id", SPOTIFY_CLIENT_SECRET = "test-secret",
        SPOTIFY_API_BASE = f.tls_api_base, SPOTIFY_TOKEN_URL = f.tls_token_url },
    }
  end)
  teardown(function()
    if server then server:stop() end
    if f then f:stop() end
  end)

  it("with the requests of both workers", function()
    local paths = {}
    for i = 1, 40 do paths[i] = "/track/" .. (i % 4 == 0 and unknown(i) or known(i)) end
    for _, r in ipairs(server:parallel(paths, 10)) do assert.is_true(r.status == 200 or r.status == 404) end
    local status, body = server:get "/metrics"
    assert.equal(200, status)
    local families = parse(body)
    local by, total = requests_by_outcome(families, "test-id")
    assert.equal(#f:log_for "/v1/", total)
    assert.equal(30, by["2xx"])
    assert.equal(10, by["4xx"])
    assert.equal(#f:log_for "/api/token", value(families, "spotify_token_fetches_total",
      "spotify_token_fetches_total", { app = "test-id" }))
  end)
end)
