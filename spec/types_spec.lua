-- lua/spotify/types.lua (the LuaLS annotations) is what tools/gen_types.lua
-- makes from the code and the data: the endpoint rows, the options and the
-- reference's text for them, the counters of client:stats() and the
-- captured answers. Any drift (a row, an option or a counter added without
-- `make types`, a fixture that gained a field) fails here.
local files = require "spec.support.files"

local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match "%d+%.%d+")
local BUILD = os.getenv "SPOTIFY_BUILD" or ("build/" .. LUA)
local ROOT = files.read_command "pwd"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The generator's output on this interpreter, and its exit status.
local function generated(root)
  local out = os.tmpname()
  local ok = files.run(("env -u LUA_INIT LUA_PATH=%s LUA_CPATH=%s %s %s > %s 2>&1"):format(
    quote(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"), quote(ROOT .. "/" .. BUILD .. "/?.so;;"), LUA,
    quote(root .. "/tools/gen_types.lua"), quote(out)))
  local text = files.read_file(out)
  os.remove(out)
  return text, ok
end

--- The @field names of a class in an annotation text.
local function fields(text, class)
  local body = text:match("\n%-%-%-@class " .. class:gsub("%.", "%%.") .. "\n(.-)\n\n")
  assert(body, "no class " .. class)
  local out = {}
  for name in body:gmatch "%-%-%-@field ([%w_]+)" do out[name] = true end
  return out
end

describe("lua/spotify/types.lua", function()
  local committed = assert(files.read_file "lua/spotify/types.lua")

  it("is what make types generates (run make types after changing what it reads)", function()
    local text, ok = generated(ROOT)
    assert.is_true(ok, text)
    assert.equal(text, committed)
  end)

  it("annotates every counter, option and endpoint method of this tree", function()
    local spotify = require "spotify"
    local client = spotify.client { client_id = "id", client_secret = "secret", api_base = "http://127.0.0.1:9/v1",
      token_url = "http://127.0.0.1:9/api/token" }
    local stats = fields(committed, "spotify.Stats")
    for name in pairs(client:stats()) do assert.truthy(stats[name], "counter " .. name .. " is not annotated") end
    for name in pairs(stats) do
      assert.is_not_nil(client:stats()[name], "Stats annotates " .. name .. ", no counter")
    end
    local opts = fields(committed, "spotify.Options")
    for name in pairs(require("spotify.options").checks) do assert.truthy(opts[name], "option " .. name) end
    client:close()
  end)

  it("types the answers from the captured fixtures, every field of each", function()
    local cjson = require "cjson"
    local function keys(file, ...)
      local text = files.read_file("spec/support/fixtures/" .. file)
      local v = cjson.decode(text)
      for _, step in ipairs { ... } do v = v[step] end
      return v
    end
    for class, v in pairs {
      ["spotify.Track"] = keys "track.json", ["spotify.Album"] = keys "album.json",
      ["spotify.Artist"] = keys "artist.json", ["spotify.Playlist"] = keys "playlist.json",
      ["spotify.Show"] = keys "show.json", ["spotify.Episode"] = keys "episode.json",
      ["spotify.Audiobook"] = keys "audiobook.json", ["spotify.Chapter"] = keys "chapter.json",
      ["spotify.SimplifiedTrack"] = keys("album.json", "tracks", "items", 1),
      ["spotify.PlaylistItem"] = keys("playlist_items.json", "items", 1),
    } do
      local annotated = fields(committed, class)
      for name in pairs(v) do assert.truthy(annotated[name], class .. " lacks the field " .. name) end
      for name in pairs(annotated) do
        assert.is_not_nil(v[name], class .. " annotates " .. name .. ", not in the answer")
      end
    end
    -- the answers the methods return are those classes
    assert.matches("%-%-%-@return spotify%.Track%? value [^\n]*\n[^\n]*\nfunction Client:track%(", committed)
    assert.matches("%-%-%-@field artists spotify%.SimplifiedArtist%[%]", committed)
    assert.matches("%-%-%-@return spotify%.Page%.SimplifiedTrack%? page[^\n]*\n[^\n]*\nfunction Client:album_tracks%(",
      committed)
  end)

  it("changes when the code gains an option the file lacks", function()
    -- the generator's inputs, copied, with one more option
    local dir = files.read_command "mktemp -d /tmp/lua-spotify-types.XXXXXX"
    assert(files.run(("mkdir -p %s/tools %s/doc %s/spec/support && cp tools/*.lua %s/tools/ && cp doc/spotify.luadoc "
      .. "%s/doc/ && cp -r spec/support/fixtures %s/spec/support/"):format(dir, dir, dir, dir, dir, dir)))
    local gen = assert(files.read_file(dir .. "/tools/gen_types.lua"))
    files.write_file(dir .. "/tools/gen_types.lua", gen:gsub('local options = require "spotify.options"',
      'local options = require "spotify.options"\noptions.checks.new_option = function() return true end', 1))
    local text, ok = generated(dir)
    files.run("rm -rf " .. quote(dir))
    assert.is_true(ok, text)
    assert.not_equal(committed, text)
    assert.truthy(text:find("\n---@field new_option any? ", 1, true), text)
  end)
end)
