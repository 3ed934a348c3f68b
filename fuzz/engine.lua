-- The exchange machine driven by any sequence of events: outcomes (statuses,
-- bodies, Retry-After values, transport failures), cache answers (hits,
-- misses, junk, raises, locks held elsewhere) and clock jumps. Whatever
-- comes, it never raises, never sends an API request without a token, never
-- asks for a negative or endless wait, and always ends. It is driven
-- through core.exchange, as the nginx driver drives it, with a Lua cache so
-- that every cache operation is an event too. Once the input runs out,
-- every answer is the plain one (a 200, a miss), so each run ends.
local core = core
local testing = core.testing()
testing.virtual_clock(true)

local TOKEN_URL = "http://accounts.invalid/api/token"
local API_URL = "http://api.invalid/v1/tracks/4iV5W9uYEdYUVa79Axb7Rh"
local MAX_STEPS = 5000

local STATUSES = { 200, 429, 500, 503, 401, 400, 403, 404, 204, 302, 599, 999, 100 }
local FAILURES = { "timeout", "connect", "broken", "tls", "tls_verify", "too_big", "too_many_headers",
  "unusable", "no_memory", "nonsense" }
local RETRY_AFTER = { nil, "0", "1", "2.5", "86400", "-3", "abc", "Sun, 06 Nov 1994 08:49:37 GMT", "1e308" }
local API_BODIES = { '{"id":"4iV5W9uYEdYUVa79Axb7Rh"}', "", "{", "[1,2]", "null", '{"error":{"message":"x"}}' }
local TOKEN_BODIES = { '{"access_token":"tok","token_type":"Bearer","expires_in":3600}',
  '{"access_token":"tok","expires_in":0}', '{"access_token":"a b","expires_in":10}',
  '{"access_token":"tok","expires_in":1e999}', "{}", "", '{"error":"invalid_client"}',
  '{"access_token":"tok2","token_type":"bearer","expires_in":5}' }

local function reader(data)
  local pos = 0
  return function(n)
    pos = pos + 1
    local b = data:byte(pos) or 0
    return n and (b % n) or b
  end
end

-- A cache answer from the input: the machine gets (ok, value).
local function cache_answer(byte, op)
  local k = byte(8)
  if k == 1 then return false, "cache down" end
  if k == 2 then return nil end -- no such method
  if op == "get" then
    if k == 3 then
      return true, ('{"access_token":"cached","expires_at":%.3f}'):format(testing.time() + byte() * 10 - 600)
    end
    if k == 4 then return true, ("%.3f"):format(testing.time() + byte() / 10) end -- a penalty, a start time
    if k == 5 then return true, "junk" end
    return true, nil
  end
  if op == "lock" then
    if k == 3 then return true, false end -- another process renews
    return true, true
  end
  if op == "pace" then -- the shared penalty (a string) or this request's start time
    if k == 3 then return true, ("%.3f"):format(testing.time() + byte() / 10) end
    if k == 4 then return true, testing.time() + byte() / 10 end
    if k == 5 then return true, "junk" end
    return true, nil
  end
  if op == "incr" then
    if k == 3 then return true, "not a number" end
    return true, byte() + 1
  end
  return true, nil
end

function check(data)
  local byte = reader(data)
  local opts = {
    client_id = "id", client_secret = "secret", token_url = TOKEN_URL,
    timeout = 1 + byte(5), connect_timeout = 1, max_body = 1000, concurrency = 1,
    max_retries = byte(5), max_retry_after = byte(4) * 20, refresh_buffer = byte(3) * 30,
    deadline = byte(2) == 1 and byte(30) + 1 or nil,
    cache = { get = true }, -- a Lua cache: every operation comes back as an action
  }
  if byte(2) == 1 then opts.rate_limit = { requests = 1 + byte(3), window = 0.5 + byte(4) } end
  local c = core.new(opts, {})
  local purpose = byte(4) == 0 and "token" or "api"
  local x = core.exchange(c, purpose, "GET", API_URL)
  local act, a, b, d = x:step()
  local steps = 0
  while act ~= "done" do
    steps = steps + 1
    assert(steps <= MAX_STEPS, "the exchange never ends")
    if act == "send" then
      local to_token = b == TOKEN_URL
      assert(to_token or purpose == "api", "a token exchange sent an API request")
      if not to_token then
        assert(type(d) == "string" and d:find("^Bearer %S+$"), "an API request without a token")
      else
        assert(type(d) == "string" and d:find("^Basic "), "a token request without credentials")
      end
      if byte(5) == 1 then
        act, a, b, d = x:failure(FAILURES[byte(#FAILURES) + 1], "detail", 0, byte(2))
      else
        local bodies = to_token and TOKEN_BODIES or API_BODIES
        act, a, b, d = x:response(STATUSES[byte(#STATUSES) + 1], bodies[byte(#bodies) + 1],
          RETRY_AFTER[byte(#RETRY_AFTER) + 1], 0, byte(2))
      end
    elseif act == "wait" then
      assert(type(a) == "number" and a >= 0 and a <= 86400 * 2, "an unusable wait " .. tostring(a))
      core.sleep(a + byte(3) * byte()) -- time passes, sometimes much more than asked
      act, a, b, d = x:step()
    elseif act == "cache" then
      assert(({ get = 1, set = 1, lock = 1, unlock = 1, incr = 1, pace = 1 })[a], "unknown cache operation " .. tostring(a))
      assert(type(b) == "string" and #b > 0, "a cache operation without a key")
      act, a, b, d = x:cache(cache_answer(byte, a))
    else
      error("unknown action " .. tostring(act))
    end
  end
  if a == nil then
    assert(getmetatable(b) == core.error_mt and type(b.kind) == "string", "done without a value or an error")
  end
  core.close(c)
end
