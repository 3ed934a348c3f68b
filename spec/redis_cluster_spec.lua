-- Redis Cluster, as managed Redis often is: a real cluster of 3 masters
-- (redis-server --cluster-enabled, redis-cli --cluster create), reached
-- through a connection that follows MOVED and ASK (examples/redis_cluster.lua).
-- The keys one script or lock touches share a slot (a hash tag names the
-- budget or the credentials); answers' keys spread over the slots.
local spotify = require "spotify"
local fake = require "spec.support.fake"
local files = require "spec.support.files"
local fleet = require "spec.support.fleet"
local keys = require "spec.support.keys"
local redis_server = require "spec.support.redis"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

-- The slot of a key, as the cluster computes it.
local function keyslot(cluster, key)
  local conn = cluster.servers[1]:connect()
  conn:define_command("cluster")
  return conn:cluster("keyslot", key)
end

-- Every key in the cluster, over all its nodes.
local function all_keys(cluster)
  local out = {}
  cluster:each(function(conn)
    for _, k in ipairs(conn:keys "*") do out[#out + 1] = k end
  end)
  table.sort(out)
  return out
end

-- Arrival times of API requests, sorted (see rate_limit_spec).
local function api_times(f)
  local t = {}
  for _, e in ipairs(f:log_for "/v1/") do t[#t + 1] = e.arrived end
  table.sort(t)
  return t
end

describe("Redis Cluster", function()
  local f, cluster
  setup(function()
    f = fake.start {}
    cluster = redis_server.cluster(3)
  end)
  teardown(function()
    if f then f:stop() end
    if cluster then cluster:stop() end
  end)
  before_each(function()
    f:reset()
    cluster:each(function(conn) conn:flushall() end)
  end)

  it("the example connection hashes keys as the cluster does and follows MOVED", function()
    redis_server.client_library() -- lua-redis on the path (Lua 5.4)
    local redis_cluster = require "examples.redis_cluster"
    for _, k in ipairs { "a", "123456789", "spotify:token:{abc}", "{}", "{}x", "{a}{b}", "x{", "x}{y}", "é" } do
      assert.equal(keyslot(cluster, k), redis_cluster.slot(k), k)
    end
    local conn = cluster:connect(1)
    -- a map that sends everything to the first node: every other slot answers MOVED
    for slot = 0, 16383 do conn.slots[slot] = cluster.nodes[1] end
    for i = 1, 30 do conn:set("k" .. i, "v" .. i) end
    for i = 1, 30 do assert.equal("v" .. i, conn:get("k" .. i)) end
    local moved = 0
    for slot = 0, 16383 do
      if conn.slots[slot] ~= cluster.nodes[1] then moved = moved + 1 end
    end
    assert.is_true(moved >= 1, "no MOVED was followed")
  end)

  it("the example connection follows ASK for a slot being moved, and keeps its map", function()
    local redis_cluster = require "examples.redis_cluster"
    local conn = cluster:connect(1)
    local key = "asked-key"
    local slot = redis_cluster.slot(key)
    local source = conn.slots[slot]
    local direct, ids = {}, {}
    for i, s in ipairs(cluster.servers) do
      local c = s:connect()
      c:define_command("cluster")
      direct[cluster.nodes[i]], ids[cluster.nodes[i]] = c, c:cluster("myid")
    end
    local target = cluster.nodes[1] == source and cluster.nodes[2] or cluster.nodes[1]
    direct[target]:cluster("setslot", slot, "importing", ids[source])
    direct[source]:cluster("setslot", slot, "migrating", ids[target])
    finally(function()
      for _, address in ipairs { source, target } do direct[address]:cluster("setslot", slot, "stable") end
    end)
    -- the key is not on the source: it answers ASK, and the command goes to the target
    conn:set(key, "v", "EX", 60)
    assert.same({ key }, direct[target]:keys "*")
    assert.same({}, direct[source]:keys "*")
    assert.equal(source, conn.slots[slot])
  end)

  it("a client's keys: the token with its lock, the penalty with its pacing, each in one slot", function()
    local function client()
      return spotify.client(fake.client_opts(f, { cache = spotify.cache.redis(cluster:connect(1)),
        rate_limit = { requests = 20, window = 2 }, max_retry_after = 0 }))
    end
    local a, b = client(), client()
    assert(a:track(ID)) -- the token, and a place in the pacing
    f:faults { { path = "/v1/", status = 429, headers = { ["Retry-After"] = "30" }, times = 1 } }
    local _, err = a:track(ID)
    assert.equal("rate_limited", err.kind)
    -- the other client's pace script, on the penalty's node, answers the penalty
    _, err = b:track(ID)
    assert.equal("rate_limited", err.kind)
    assert.matches("earlier Retry%-After", err.message)
    assert.is_true(err.retry_after > 25 and err.retry_after <= 30, tostring(err.retry_after))
    assert.equal(2, #f:log_for "/v1/")
    assert.equal(0, a:stats().cache_errors + b:stats().cache_errors)
    local token, lock, penalty = keys.of(f)
    assert.equal(keyslot(cluster, "spotify:" .. token), keyslot(cluster, "spotify:" .. lock))
    assert.equal(keyslot(cluster, "spotify:" .. penalty), keyslot(cluster, "spotify:" .. keys.pace "test-id"))
    local stored = all_keys(cluster)
    assert.same({ "spotify:" .. keys.pace "test-id", "spotify:" .. penalty, "spotify:" .. token }, stored)
  end)

  it("answers kept in the cluster spread over its slots and nodes", function()
    local store = spotify.cache.redis(cluster:connect(1), { prefix = "answers:" })
    local c = spotify.client(fake.client_opts(f, { cache = spotify.cache.redis(cluster:connect(1)),
      responses = spotify.responses { store = store, ttl = 3600 } }))
    local ids = fake.ids(12)
    for _, id in ipairs(ids) do assert(c:track(id)) end
    local slots, nodes = {}, {}
    cluster:each(function(conn)
      for _, k in ipairs(conn:keys "answers:*") do
        slots[keyslot(cluster, k)] = true
        nodes[conn] = true
      end
    end)
    local n_slots, n_nodes = 0, 0
    for _ in pairs(slots) do n_slots = n_slots + 1 end
    for _ in pairs(nodes) do n_nodes = n_nodes + 1 end
    assert.is_true(n_slots >= 10, n_slots .. " slots")
    assert.equal(3, n_nodes)
    assert.equal(0, c:stats().cache_errors)
  end)

  it("a paced fleet of 4 processes: every call answered, 0 cache errors, 1 token, never more than 20 in 2 s",
    function()
      local dir = files.read_command "mktemp -d"
      finally(function() os.execute("rm -rf '" .. dir .. "'") end)
      local summaries = fleet.launch(dir, f, 4, { cache = "redis_cluster", target = table.concat(cluster.nodes, ","),
        calls = 30, rate_requests = 20, rate_window = 2 })()
      local t = api_times(f)
      io.stderr:write(("[cluster fleet peak: %d requests in 2 s]\n"):format((f:peak("/v1/", 2))))
      local tokens, errors = {}, 0
      for i, s in ipairs(summaries) do
        assert.equal(30, s.ok, "worker " .. i .. ": " .. table.concat(s.errors, "; "))
        errors = errors + s.cache_errors
        for _, tok in ipairs(s.tokens) do tokens[tok] = true end
      end
      assert.equal(0, errors)
      local distinct = 0
      for _ in pairs(tokens) do distinct = distinct + 1 end
      assert.equal(1, distinct)
      assert.equal(1, #f:log_for "/api/token")
      assert.equal(120, #t)
      for i = 21, #t do
        assert.is_true(t[i] - t[i - 20] >= 2,
          ("requests %d and %d arrived %.3f s apart"):format(i - 20, i, t[i] - t[i - 20]))
      end
    end)
end)
