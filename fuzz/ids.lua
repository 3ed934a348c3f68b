-- core.parse_id and testing.urlencode on any bytes. The first byte picks the
-- ID kind; the rest is the input.
local core = core
local testing = core.testing()

local KINDS = { "track", "album", "artist", "playlist", "show", "episode", "audiobook",
  "chapter", "user", "category" }
local BASE62 = { track = true, album = true, artist = true, playlist = true, show = true,
  episode = true, audiobook = true, chapter = true }

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function check(data)
  local kind = KINDS[(data:byte(1) or 0) % #KINDS + 1]
  local input = data:sub(2)
  local id, why = core.parse_id(input, kind)
  if id == nil then
    assert(type(why) == "string", "a refusal without a message")
  else
    assert(type(id) == "string" and why == nil, "odd result")
    if BASE62[kind] then
      assert(#id == 22 and not id:find "[^%w]", "not a base-62 ID: " .. id)
    else
      assert(#id > 0 and not id:find "[^%w._-]", "character outside an ID: " .. id)
    end
    -- An ID goes into a path: it must never be a dot segment.
    assert(id ~= "." and id ~= "..", "dot segment accepted as a " .. kind .. " ID")
    assert(input:find(id, 1, true), "ID not taken from the input")
  end
  local enc = testing.urlencode(input)
  assert(not enc:find "[^%w%-%._~%%]", "byte left unencoded")
  assert(unescape(enc) == input, "urlencode does not round-trip")
end
