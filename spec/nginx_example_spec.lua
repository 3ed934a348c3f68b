-- examples/nginx/run.sh as a user runs it: it fills a prefix with the
-- example and this tree's module and starts nginx, which answers the routes
-- of examples/nginx/README.md (/health, 429 with Retry-After, the warm-up)
-- against the fake Spotify; `--fake` starts a fake of its own.
local cjson = require "cjson"
local socket = require "socket"
local http = require "socket.http"
local fake = require "spec.support.fake"
local nginx = require "spec.support.nginx"
local files = require "spec.support.files"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- GET http://127.0.0.1:port/path: status, body, headers.
local function get(port, path)
  local body = {}
  local _, status, headers = http.request {
    url = ("http://127.0.0.1:%d%s"):format(port, path), sink = require("ltn12").sink.table(body),
  }
  return status, table.concat(body), headers
end

--- Start run.sh with `env` (and `args`); returns its pid, port and prefix
-- once nginx answers /health or after 10 s.
local function start(env, args)
  nginx.check()
  local prefix = files.read_command "mktemp -d /tmp/lua-spotify-example.XXXXXX"
  local port = files.free_port()
  local vars = { PORT = port, PREFIX = prefix }
  for k, v in pairs(env) do vars[k] = v end
  local assigns = {}
  for k, v in pairs(vars) do assigns[#assigns + 1] = k .. "=" .. quote(v) end
  -- setsid: run.sh, nginx and any fake form one group that stop() ends
  local pid = tonumber(files.read_command(("setsid env -u LD_PRELOAD %s sh examples/nginx/run.sh %s "
    .. "> %s/run.log 2>&1 < /dev/null & echo $!"):format(table.concat(assigns, " "), args or "", prefix)))
  local give_up = socket.gettime() + 10
  while socket.gettime() < give_up do
    local status = get(port, "/health")
    if status == 200 or status == 503 then break end
    socket.sleep(0.1)
  end
  return { pid = pid, port = port, prefix = prefix }
end

local function stop(run)
  if not run then return end
  os.execute(("kill -TERM -%d 2> /dev/null; sleep 0.3; kill -KILL -%d 2> /dev/null; rm -rf %s")
    :format(run.pid, run.pid, quote(run.prefix)))
end

describe("examples/nginx/run.sh", function()
  local f, run
  setup(function()
    f = fake.start {}
    run = start { SPOTIFY_CLIENT_ID = "test-id", SPOTIFY_CLIENT_SECRET = "test-secret",
      SPOTIFY_API_BASE = f.api_base, SPOTIFY_TOKEN_URL = f.token_url, SPOTIFY_TIMEOUT = "2" }
  end)
  teardown(function()
    stop(run)
    if f then f:stop() end
  end)

  it("copies the module into the prefix, so nothing is read from the tree", function()
    local conf = files.read_file(run.prefix .. "/conf/nginx.conf")
    assert.matches("listen " .. run.port .. ";", conf, 1, true)
    assert.equal("$prefix/?.lua;$prefix/lua/?.lua;$prefix/lua/?/init.lua;;", conf:match 'lua_package_path "([^"]*)"')
    assert.equal("$prefix/lib/?.so;;", conf:match 'lua_package_cpath "([^"]*)"')
    assert.truthy(files.read_file(run.prefix .. "/lib/spotify/core.so"))
    assert.truthy(files.read_file(run.prefix .. "/lua/spotify/init.lua"))
  end)

  it("warms the token up before the first request, and reports it on /health", function()
    -- the workers' warm-up timers fetched it: one fetch, shared through the dict
    local status, body = get(run.port, "/health")
    assert.equal(200, status, body)
    assert.is_true(cjson.decode(body).token_expires_in > 3000)
    assert.equal(1, #f:log_for "/api/token")
    assert.equal(0, #f:log_for "/v1/")
    assert.not_matches("tok%-", body)
  end)

  it("answers a track", function()
    local status, body = get(run.port, "/track/" .. ID)
    assert.equal(200, status, body)
    assert.equal(ID, cjson.decode(body).id)
  end)

  it("answers 429 with Retry-After when Spotify asks to wait too long", function()
    f:faults { { path = "/v1/tracks", status = 429, headers = { ["Retry-After"] = "120" } } }
    local status, body, headers = get(run.port, "/track/" .. ID)
    f:faults {}
    assert.equal(429, status, body)
    assert.equal("120", headers["retry-after"])
    assert.equal("rate_limited", cjson.decode(body).error.kind)
  end)

  it("answers 503 on /health when no token can be had", function()
    f:config { credentials = {} } -- test-id is refused from now on
    -- another nginx, sharing nothing with the first: its dict holds no token
    local other = start { SPOTIFY_CLIENT_ID = "test-id", SPOTIFY_CLIENT_SECRET = "test-secret",
      SPOTIFY_API_BASE = f.api_base, SPOTIFY_TOKEN_URL = f.token_url }
    local status, body = get(other.port, "/health")
    stop(other)
    f:reset()
    assert.equal(503, status, body)
    assert.equal("auth", cjson.decode(body).error.kind)
  end)
end)

describe("examples/nginx/run.sh --fake", function()
  local run
  setup(function() run = start({}, "--fake") end)
  teardown(function() stop(run) end)

  it("serves the example against a fake Spotify of its own, with no credentials given", function()
    local status, body = get(run.port, "/track/" .. ID)
    assert.equal(200, status, body)
    assert.equal("Austerity", cjson.decode(body).name)
    assert.matches("the fake Spotify", files.read_file(run.prefix .. "/run.log"), 1, true)
  end)
end)
