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

  it("shapes every element of a long array, whatever its neighbours", function()
    -- Longer than the stretch of elements the walk looks at in one go.
    local parts = {}
    for i = 1, 100 do
      local k = i % 4
      parts[i] = k == 0 and tostring(i) or k == 1 and ('{"n":%d,"x":null}'):format(i)
        or k == 2 and "null" or ('"s%d"'):format(i)
    end
    local math_type = rawget(math, "type") -- Lua 5.3+
    local v = assert(core.decode('{"a":[' .. table.concat(parts, ",") .. '],"b":[1.5,2.0]}'))
    assert.equal(100, #v.a)
    for i = 1, 100 do
      local k, e = i % 4, v.a[i]
      if k == 0 then
        assert.equal(i, e)
        if math_type then assert.equal("integer", math_type(e)) end
      elseif k == 1 then
        assert.same({ n = i }, e)
        if math_type then assert.equal("integer", math_type(e.n)) end
      elseif k == 2 then
        assert.equal(spotify.null, e)
      else
        assert.equal("s" .. i, e)
      end
    end
    assert.equal(1.5, v.b[1])
    if math_type then assert.equal("float", math_type(v.b[1])) end
    if math_type then assert.equal("integer", math_type(v.b[2])) end
  end)

  it("returns nil and a message for broken JSON", function()
    local v, err = core.decode '{"a": '
    assert.is_nil(v)
    assert.is_string(err)
    assert.has_error(function() core.decode(nil) end)
  end)
end)
