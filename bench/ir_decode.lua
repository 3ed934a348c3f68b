--- Decodes one answer N times, through the module (core.decode: cjson and
-- the pass that drops object nulls and, on 5.3+, makes integers) or through
-- a plain cjson instance. Under callgrind at two N, the difference per
-- decode of the two is what the pass costs:
--
--   for w in core cjson; do for n in 5 25; do
--     LUA_PATH="lua/?.lua;;" LUA_CPATH="build/lua5.4/?.so;;" valgrind --tool=callgrind \
--       --callgrind-out-file=/dev/null lua5.4 bench/ir_decode.lua $w bench/out/www/search.json $n
--   done; done
local which, path, n = arg[1], arg[2], tonumber(arg[3])
local f = assert(io.open(path, "rb"))
local text = f:read "*a"
f:close()
local decode = which == "core" and require("spotify.core").decode or require("cjson").new().decode
for _ = 1, n do assert(decode(text)) end
