-- What the gateway takes from the C core: a raw exchange (core.exchange's
-- sixth argument) hands back the answer's text and status undecoded,
-- whether it came from the network or from the response cache, and
-- core.peek_text the kept text of a fresh answer. Driven here by hand, as
-- the nginx driver drives it (its "send" answered with x:response).
local spotify = require "spotify"
local core = require "spotify.core"

local URL = "http://127.0.0.1:9/v1/tracks/4iV5W9uYEdYUVa79Axb7Rh"
-- a text lua-cjson would write otherwise (spaces, key order, an escape)
local TEXT = '{"name": "A \\u00e9", "id": "4iV5W9uYEdYUVa79Axb7Rh", "n": 1.50}'

describe("the raw exchange", function()
  local function client(extra)
    local o = { access_token = "fixed-token", api_base = "http://127.0.0.1:9/v1" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return spotify.client(o)
  end

  it("hands back the text and status as sent, and errors as errors", function()
    local c = client()
    local x = core.exchange(c, "api", "GET", URL, "track", true)
    local act, method, url, auth = x:step()
    assert.same({ "send", "GET", URL, "Bearer fixed-token" }, { act, method, url, auth })
    local done, text, status = x:response(200, TEXT, nil, 0.01, 1, "max-age=0")
    assert.same({ "done", TEXT, 200 }, { done, text, status })
    x = core.exchange(c, "api", "GET", URL, "track", true)
    x:step()
    local d2, value, err = x:response(404, '{"error":{"status":404,"message":"Non existing id"}}', nil, 0, 0)
    assert.equal("done", d2)
    assert.is_nil(value)
    assert.equal("not_found", err.kind)
    assert.equal("Non existing id", err.message)
    c:close()
  end)

  it("hands back the response cache's kept text on a hit, and peek_text finds it", function()
    local c = client { responses = spotify.responses { ttl = { track = 60 } } }
    assert.is_nil(core.peek_text(c, URL, "track"))
    local x = core.exchange(c, "api", "GET", URL, "track", true)
    x:step()
    assert.equal(TEXT, select(2, x:response(200, TEXT, nil, 0, 0)))
    local hit = core.exchange(c, "api", "GET", URL, "track", true)
    local act, text, status = hit:step() -- no send: the process tier answers
    assert.same({ "done", TEXT, 200 }, { act, text, status })
    assert.equal(TEXT, core.peek_text(c, URL, "track"))
    assert.is_nil(core.peek_text(c, URL .. "?market=DE", "track")) -- another URL, another answer
    assert.equal(2, c:stats().response_hits)
    -- a decoding exchange of the same answer still decodes
    local decoded = core.exchange(c, "api", "GET", URL, "track")
    local d, value = decoded:step()
    assert.equal("done", d)
    assert.equal("A \195\169", value.name)
    c:close()
  end)
end)
