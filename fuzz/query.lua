-- core.query on tables built from the input: string, number, boolean and
-- list values, odd keys (empty, binary, non-string), too many parameters.
-- A table that only holds valid parameters must give a query string that
-- decodes back to it; anything else must give nil and a message.
local core = core

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function scalar_text(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "boolean" then return tostring(v) end
  if t == "number" and v == v and v ~= math.huge and v ~= -math.huge then
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%.0f"):format(v) end
    return ("%.14g"):format(v)
  end
  return nil
end

-- The text a valid value encodes to (list items joined by ","), or nil.
local function expected_text(v)
  if type(v) ~= "table" then return scalar_text(v) and { scalar_text(v) } end
  if #v == 0 then return nil end
  local out = {}
  for i = 1, #v do
    out[i] = scalar_text(v[i])
    if not out[i] then return nil end
  end
  return out
end

local function build(data)
  local t, pos, n = {}, 1, 0
  local function take(len)
    local s = data:sub(pos, pos + len - 1)
    pos = pos + len
    return s
  end
  local function size(limit)
    local b = data:byte(pos) or 0
    pos = pos + 1
    return b % limit
  end
  while pos <= #data and n < 70 do
    local op = data:byte(pos)
    pos = pos + 1
    local key = take(size(12))
    local raw = take(size(24))
    local m, v = op % 8, nil
    if m == 0 then
      v = raw
    elseif m == 1 then
      v = #raw >= 8 and string.unpack("<d", raw) or #raw - 3
    elseif m == 2 then
      v = op >= 128
    elseif m == 3 then
      v = {}
      for piece in raw:gmatch "[^\1]+" do v[#v + 1] = piece end
    elseif m == 4 then
      v = { raw, #raw, op >= 128 }
    elseif m == 5 then
      v = { {} }
    elseif m == 6 then
      v = {}
    else
      t[#key] = raw -- a key that is not a string
    end
    if v ~= nil then t[key] = v end
    n = n + 1
  end
  return t
end

function check(data)
  local t = build(data)
  local want, count, valid = {}, 0, true
  for k, v in pairs(t) do
    count = count + 1
    local text = type(k) == "string" and expected_text(v)
    if not text or k:find("\0", 1, true) then valid = false end
    want[k] = text
  end
  valid = valid and count <= 64
  local qs, why = core.query(t)
  if not valid then
    assert(qs == nil and type(why) == "string", "an invalid table was accepted")
    return
  end
  assert(type(qs) == "string", "a valid table was refused: " .. tostring(why))
  assert(not qs:find "[^%w%-%._~%%=&,]", "byte left unencoded in the query")
  local seen = 0
  for pair in (qs .. "&"):gmatch "([^&]*)&" do
    if pair ~= "" or count > 0 then
      local k, v = pair:match "^([^=]*)=(.*)$"
      assert(k, "pair without '='")
      k = unescape(k)
      local items = want[k]
      assert(items, "unknown or repeated key in the query: " .. k)
      local got = {}
      for piece in (v .. ","):gmatch "([^,]*)," do got[#got + 1] = unescape(piece) end
      assert(#got == #items, "list length differs for " .. k)
      for i = 1, #items do assert(got[i] == items[i], "value differs for " .. k) end
      want[k] = nil
      seen = seen + 1
    end
  end
  assert(seen == count, "parameters lost")
end
