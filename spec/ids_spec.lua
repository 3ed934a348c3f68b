local spotify = require "spotify"
local core = require "spotify.core"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

describe("IDs", function()
  local accepted = {
    ID,
    "spotify:track:" .. ID,
    "https://open.spotify.com/track/" .. ID,
    "https://open.spotify.com/track/" .. ID .. "?si=abc123",
    "https://open.spotify.com/intl-de/track/" .. ID,
    "https://open.spotify.com/track/" .. ID .. "#frag",
    "http://open.spotify.com/track/" .. ID,
    "https://open.spotify.com/embed/track/" .. ID,
  }
  for _, input in ipairs(accepted) do
    it("accepts " .. input, function()
      assert.equal(ID, core.parse_id(input, "track"))
    end)
  end

  it("accepts old user playlist URIs", function()
    assert.equal(ID, core.parse_id("spotify:user:someone:playlist:" .. ID, "playlist"))
  end)

  local rejected = {
    "", "abc", ID .. "x", ID:sub(2), "../../me", ID:sub(1, 20) .. "/.",
    "spotify:album:" .. ID, "https://open.spotify.com/album/" .. ID,
    "https://evil.example/track/" .. ID, "spotify:track:" .. ID .. "?x",
    ID:sub(1, 21) .. "%", ID:sub(1, 21) .. "?", ID:sub(1, 21) .. "#", ID:sub(1, 21) .. " ",
    ID:sub(1, 21) .. "\0", string.rep("a", 10000), "spotify:track:", "https://open.spotify.com/track/",
    "%2F%2E%2E%2F" .. ID,
  }
  for _, input in ipairs(rejected) do
    it("rejects " .. ("%q"):format(input:sub(1, 40)), function()
      local id, why = core.parse_id(input, "track")
      assert.is_nil(id)
      assert.matches("invalid track id", why, 1, true)
    end)
  end

  it("rejects non-strings with a message", function()
    local id, why = core.parse_id(42, "track")
    assert.is_nil(id)
    assert.matches("must be a string", why, 1, true)
  end)

  it("checks user and category IDs by their own rules", function()
    assert.equal("smedjan", core.parse_id("smedjan", "user"))
    assert.equal("smedjan", core.parse_id("spotify:user:smedjan", "user"))
    assert.is_nil(core.parse_id("a/b", "user"))
    assert.equal("dinner", core.parse_id("dinner", "category"))
    assert.is_nil(core.parse_id("din ner", "category"))
  end)

  describe("a list at once (parse_ids)", function()
    it("parses every form and builds each ID's URL", function()
      local inputs = { ID, "spotify:track:" .. ID, "https://open.spotify.com/track/" .. ID .. "?si=x" }
      local ids, urls = core.parse_ids(inputs, "track", "http://h/v1/tracks/", "?market=SE")
      assert.same({ ID, ID, ID }, ids)
      for i = 1, 3 do assert.equal("http://h/v1/tracks/" .. ID .. "?market=SE", urls[i]) end
      local only, none = core.parse_ids({ "spotify:album:" .. ID }, "album")
      assert.same({ ID }, only)
      assert.same({}, none)
    end)

    it("refuses what parse_id refuses, naming the position", function()
      for _, bad in ipairs { "nope", 5, {}, "spotify:album:" .. ID, ID .. "\0" } do
        local ids, why = core.parse_ids({ ID, ID, bad }, "track", "x/")
        assert.is_nil(ids)
        local _, one = core.parse_id(bad, "track")
        assert.equal(one .. " (at position 3)", why)
      end
    end)

    it("raises on an unknown kind or a list that is not a table", function()
      assert.has_error(function() core.parse_ids({ ID }, "planet") end)
      assert.has_error(function() core.parse_ids(ID, "track") end)
    end)
  end)

  it("gives invalid_argument from client methods and sends nothing", function()
    local sent = 0
    local c = spotify.client { client_id = "i", client_secret = "s", api_base = "http://127.0.0.1:9/v1",
      token_url = "http://127.0.0.1:9/t", on_request = function() sent = sent + 1 end }
    for _, input in ipairs { "../x", {}, 5, "spotify:album:" .. ID } do
      local v, err = c:track(input)
      assert.is_nil(v)
      assert.equal("invalid_argument", err.kind)
    end
    local v, err = c:tracks { ID, "nope" }
    assert.is_nil(v)
    assert.equal("invalid_argument", err.kind)
    assert.matches("position 2", err.message, 1, true)
    assert.equal(0, sent)
    c:close()
  end)
end)

describe("query strings", function()
  it("sorts, joins lists with commas and percent-encodes", function()
    assert.equal("a=1&b=x%20y&c=p,q%2Cr&d=true&e=0.5",
      core.query { b = "x y", a = 1, c = { "p", "q,r" }, d = true, e = 0.5 })
  end)

  it("encodes everything that could change the request", function()
    assert.equal("q=a%26b%3Dc%23d%3Fe%2Ff", core.query { q = "a&b=c#d?e/f" })
  end)

  it("rejects values it cannot send", function()
    local qs, why = core.query { limit = function() end }
    assert.is_nil(qs)
    assert.matches("limit", why, 1, true)
    assert.is_nil((core.query { x = {} }))
    assert.is_nil((core.query { x = 0 / 0 }))
  end)
end)
