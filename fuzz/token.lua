-- testing.parse_token on any token endpoint answer: either a usable token
-- (visible ASCII only, so it cannot break a header line) and a positive,
-- finite lifetime, or nil and a message.
local core = core
local testing = core.testing()

function check(data)
  local token, expires_in = testing.parse_token(data)
  if token == nil then
    assert(type(expires_in) == "string", "a refusal without a message")
    return
  end
  assert(type(token) == "string" and #token > 0 and #token <= 4096, "odd token")
  assert(not token:find "[^\33-\126]", "token with a byte that could break a header")
  assert(type(expires_in) == "number" and expires_in > 0 and expires_in < math.huge,
    "unusable lifetime " .. tostring(expires_in))
end
