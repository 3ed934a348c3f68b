-- core.decode on any text: a value or nil and a message, never a raise; no
-- object field of the result holds null, array nulls stay spotify.null.
local core = core
local null = core.null

local function walk(v)
  for k, x in pairs(v) do
    if x == null then assert(type(k) == "number", "null left in object field " .. tostring(k)) end
    if type(x) == "table" then walk(x) end
  end
end

function check(data)
  local v, why = core.decode(data)
  if v == nil then
    assert(type(why) == "string", "a refusal without a message")
    return
  end
  if type(v) == "table" then walk(v) end
end
