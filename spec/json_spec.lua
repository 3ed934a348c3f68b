-- core.decode: lua-cjson with Spotify's nulls made Lua-shaped.
local core = require "spotify.core"
local spotify = require "spotify"

describe("core.decode", function()
  it("drops null object fields at any depth, also inside arrays", function()
    local v = assert(core.decode '{"a":null,"b":{"c":null,"d":1},"e":[{"f":null,"g":2},[{"h":null}]]}')
    assert.is_nil(v.a)
    assert.same({ d = 1 }, v.b)
    assert.same({ g = 2 }, v.e[1])
    assert.same({ {} }, v.e[2])
  end)

  it("keeps null array elements as spotify.null", function()
    local v = assert(core.decode '{"tracks":[null,{"id":"x","preview_url":null},null]}')
    assert.equal(3, #v.tracks)
    assert.equal(spotify.null, v.tracks[1])
    assert.same({ id = "x" }, v.tracks[2])
    assert.equal(spotify.null, v.tracks[3])
  end)

  it("leaves the word null inside strings alone", function()
    local v = assert(core.decode '{"name":"null and void","x":null}')
    assert.equal("null and void", v.name)
    assert.is_nil(v.x)
  end)

  it("returns nil and a message for broken JSON", function()
    local v, err = core.decode '{"a": '
    assert.is_nil(v)
    assert.is_string(err)
    assert.has_error(function() core.decode(nil) end)
  end)
end)
