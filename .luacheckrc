std = "min"
max_line_length = 120
files["spec"] = { std = "+busted" }
files["examples/love"] = { std = "luajit+love" }
files["lua/spotify/ngx.lua"] = { std = "ngx_lua" }
files["lua/spotify/cache/shdict.lua"] = { std = "ngx_lua" }
globals = {}
read_globals = { "ngx" }
exclude_files = { "build", "build-asan" }
