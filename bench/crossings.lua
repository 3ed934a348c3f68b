--- Counts the C<->Lua crossings of one plural call: client:tracks(50 IDs)
-- with batch = false (50 single lookups) against the fake, concurrency 8.
-- A crossing is a call from Lua into a C function of spotify.core, or a
-- call from such a function back into Lua. Counted with a debug hook on
-- call events; the client is warm (token fetched) before counting.
--
-- usage (from the top directory, after `make build LUAS=luajit`):
--   LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="build/luajit/?.so;;" \
--     luajit bench/crossings.lua [N] [--detail]
local spotify = require "spotify"
local core = require "spotify.core"
local fake = require "spec.support.fake"

local n, detail = 50, false
for _, a in ipairs(arg) do
  if a == "--detail" then detail = true else n = tonumber(a) or n end
end

-- Every C function reachable from the core table, by name.
local names = {}
local function collect(t, prefix, seen)
  if seen[t] then return end
  seen[t] = true
  for k, v in pairs(t) do
    if type(v) == "function" and debug.getinfo(v, "S").what == "C" then
      names[v] = prefix .. tostring(k)
    elseif type(v) == "table" then
      collect(v, prefix .. tostring(k) .. ".", seen)
    end
  end
end
collect(core, "core.", {})

local function id_of(i) return (("%022d"):format(i):gsub("0", "A", 1)) end

local f = fake.start {}
local ok, err = pcall(function()
  local c = spotify.client(fake.client_opts(f, { batch = false, concurrency = 8 }))
  assert(c:track(id_of(1))) -- warm: token and connection
  local ids = {}
  for i = 1, n do ids[i] = id_of(i) end

  local into_c, into_lua, by_name = 0, 0, {}
  debug.sethook(function()
    local callee = debug.getinfo(2, "fS")
    local name = names[callee.func]
    if name then
      into_c = into_c + 1
      by_name[name] = (by_name[name] or 0) + 1
    elseif callee.what ~= "C" then
      local caller = debug.getinfo(3, "f")
      if caller and names[caller.func] then
        into_lua = into_lua + 1
        local key = "callback from " .. names[caller.func]
        by_name[key] = (by_name[key] or 0) + 1
      end
    end
  end, "c")
  local out, cerr = c:tracks(ids)
  debug.sethook()
  assert(out, cerr and cerr.message)
  assert(#out == n, "wrong number of results")

  print(("tracks(%d IDs, batch = false): %d crossings (%d Lua->C, %d C->Lua)")
    :format(n, into_c + into_lua, into_c, into_lua))
  if detail then
    local rows = {}
    for k, v in pairs(by_name) do rows[#rows + 1] = { k, v } end
    table.sort(rows, function(a, b) return a[2] > b[2] end)
    for _, r in ipairs(rows) do print(("  %5d  %s"):format(r[2], r[1])) end
  end
end)
f:stop()
if not ok then error(err, 0) end
