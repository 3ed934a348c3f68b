--- The cache contract (README, "Token caches") as checks that run anywhere:
-- under busted, and inside nginx for the shared dict. Each check returns
-- nothing when the cache keeps the contract and raises a message when not.
--
--   local contract = require "spec.support.cache_contract"
--   for name, check in contract.checks(sleep) do check(make_cache) end
local contract = {}

local function expect(cond, message)
  if not cond then error(message, 2) end
end

--- The checks, in order, as a list of {name, fn(make_cache)}; `sleep`
-- waits real seconds (ngx.sleep inside nginx).
function contract.checks(sleep)
  local list = {}
  local function check(name, fn) list[#list + 1] = { name = name, fn = fn } end

  check("get of a missing key is nil", function(make)
    expect(make():get("contract:missing") == nil, "a missing key answered something")
  end)

  check("set then get gives the value back, byte for byte", function(make)
    local c = make()
    local value = '{"access_token":"a\\"b\\\\c","expires_at":1.5e9}\0tail'
    c:set("contract:v", value, 60)
    expect(c:get("contract:v") == value, "the value changed on its way")
  end)

  check("keys are separate", function(make)
    local c = make()
    c:set("contract:a", "1", 60)
    c:set("contract:b", "2", 60)
    expect(c:get("contract:a") == "1" and c:get("contract:b") == "2", "one key overwrote another")
  end)

  check("an entry expires after its ttl", function(make)
    local c = make()
    c:set("contract:ttl", "v", 0.3)
    expect(c:get("contract:ttl") == "v", "gone at once")
    sleep(0.5)
    expect(c:get("contract:ttl") == nil, "still there after its ttl")
  end)

  check("two caches on the same store see each other", function(make)
    make():set("contract:shared", "x", 60)
    expect(make():get("contract:shared") == "x", "a second cache does not see the first one's entry")
  end)

  check("a response store's entry: a URL key and 200 KB of JSON come back whole", function(make)
    -- spotify.responses keeps answers (a search page is about 100 KB) under their URL
    local c = make()
    local key = "contract:response:https://api.spotify.com/v1/search?q=a%20b&type=track,album&market=DE"
    local parts = {}
    for i = 1, 4000 do parts[i] = ('{"id":"%022d","name":"n\\u00e9 %d"}'):format(i, i) end
    local value = "1796000000.000 1796000300.000\n[" .. table.concat(parts, ",") .. "]"
    c:set(key, value, 60)
    expect(make():get(key) == value, "the entry changed on its way")
  end)

  check("lock: one owner at a time, free again after unlock or its ttl", function(make)
    local one, two = make(), make()
    if not one.lock then return end
    expect(one:lock("contract:lock", 5) == true, "a free lock was refused")
    expect(two:lock("contract:lock", 5) == false, "a held lock was taken again")
    one:unlock("contract:lock")
    expect(two:lock("contract:lock", 0.3) == true, "an unlocked lock stayed held")
    sleep(0.5)
    expect(one:lock("contract:lock", 5) == true, "a lock outlived its ttl")
    one:unlock("contract:lock")
  end)

  check("incr: a missing key starts at 0, an existing one keeps counting", function(make)
    local c = make()
    if not c.incr then return end
    expect(c:incr("contract:n", 1, 60) == 1, "a new counter did not start at 0")
    expect(c:incr("contract:n", 2, 60) == 3, "the counter did not add up")
    expect(make():incr("contract:n", 1, 60) == 4, "a second cache does not share the counter")
  end)

  check("pace: a start time per request, N per window, shared; a live penalty answered instead", function(make)
    local c = make()
    if not c.pace then return end
    -- `now` is the caller's clock. A cache with a clock of its own (Redis)
    -- keeps time on it and answers on the caller's: the same starts, less
    -- what passed between the calls.
    local function pace(cache, now, requests)
      return cache:pace("contract:penalty", "contract:pace",
        { requests = requests or 2, window = 10, margin = 0.5, now = now })
    end
    expect(pace(c, 1000) == 1000, "the first request did not start at once")
    expect(pace(make(), 1001) == 1001, "the second of two did not start at once (or the count is not shared)")
    local third = pace(c, 1002)
    expect(third > 1007 and third <= 1012.5, "the third did not wait for the first's window and margin: " .. third)
    expect(pace(c, 1003, 0) == 1003, "the penalty alone (requests = 0) answered a wait with no penalty")
    c:set("contract:penalty", "1500 60 QUOTA_EXCEEDED", 1)
    local held = pace(c, 1003)
    expect(type(held) == "string" and held:match " QUOTA_EXCEEDED$", "a live penalty was not answered")
    expect(type(pace(c, 1003, 0)) == "string", "the penalty alone did not answer a live penalty")
    sleep(1.3)
    expect(pace(c, 1600, 0) == 1600, "an ended penalty still held")
  end)

  return list
end

--- Run every check; returns a list of {name, ok, message}.
function contract.run(make_cache, sleep)
  local out = {}
  for _, c in ipairs(contract.checks(sleep)) do
    local ok, message = pcall(c.fn, make_cache)
    out[#out + 1] = { name = c.name, ok = ok, message = message and tostring(message) or nil }
  end
  return out
end

return contract
