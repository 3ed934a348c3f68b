-- A fleet of gateways (examples/gateway as shipped): two nginx nodes of 2
-- workers each sharing one Redis (token, penalty, answers), and four caller
-- processes with no credentials, 500 single lookups each over 50 IDs spread
-- across both nodes: every answer right, at most one request upstream per
-- ID, one token request in all.
local cjson = require "cjson"
local fake = require "spec.support.fake"
local files = require "spec.support.files"
local fleet = require "spec.support.fleet"
local gateway = require "spec.support.gateway"
local redis_server = require "spec.support.redis"

local CALLERS, LOOKUPS, IDS = 4, 500, 50

-- Start CALLERS caller processes against the nodes; their summaries.
local function run_callers(nodes, ids)
  local lua, build = fleet.runtime()
  local dir = files.read_command "mktemp -d /tmp/lua-spotify-gwfleet.XXXXXX"
  local bases = {}
  for i, node in ipairs(nodes) do bases[i] = node.base end
  local cmd = {}
  for i = 1, CALLERS do
    cmd[#cmd + 1] = ("%s spec/support/gateway_caller.lua build=%s bases=%s ids=%s lookups=%d seed=%d > %s/out%d 2>&1 &")
      :format(lua, build, table.concat(bases, ","), table.concat(ids, ","), LOOKUPS, i, dir, i)
  end
  assert(files.run(table.concat(cmd, " ") .. " wait"))
  local out = {}
  for i = 1, CALLERS do
    local text = files.read_file(dir .. "/out" .. i) or ""
    local ok, summary = pcall(cjson.decode, text)
    assert(ok and type(summary) == "table", "caller " .. i .. " printed no summary: " .. text)
    out[i] = summary
  end
  files.run("rm -rf " .. dir)
  return out
end

local function fleet_case(window, note)
  return function()
    local f, redis, nodes = fake.start {}, redis_server.start(), {}
    finally(function()
      for _, node in ipairs(nodes) do node:stop() end
      redis:stop()
      f:stop()
    end)
    for i = 1, 2 do
      nodes[i] = gateway.start(f, { workers = 2, env = { SPOTIFY_REDIS = "127.0.0.1:" .. redis.port,
        SPOTIFY_BATCH_WINDOW = window } })
    end
    local ids = fake.ids(IDS, "F")
    local summaries = run_callers(nodes, ids)
    for i, s in ipairs(summaries) do
      assert.equal(LOOKUPS, s.ok, "caller " .. i .. ": " .. cjson.encode(s.errors))
      assert.equal(0, s.token_fetches)
      assert.equal(0, s.secrets)
    end
    local upstream = #f:log_for "/v1/"
    assert.is_true(upstream <= IDS, upstream .. " requests upstream for " .. IDS .. " IDs" .. (note or ""))
    -- the four workers' warm-ups and every request: one token in all
    assert.equal(1, #f:log_for "/api/token")
  end
end

describe("a fleet of two gateways sharing one Redis", function()
  it("answers 4 x 500 lookups over 50 IDs with at most 50 requests upstream and one token",
    fleet_case "0")
  it("does so with batch windows too (single lookups of many callers in one batch request)",
    fleet_case("0.005", " (batch answers kept per item make this bound reachable with batch_window)"))
end)
