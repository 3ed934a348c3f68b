rockspec_format = "3.0"
package = "lua-spotify"
version = "0.1.0-1"

source = {
  url = "git+https://github.com/lua-spotify/lua-spotify.git",
  tag = "v0.1.0",
}

description = {
  summary = "The Spotify Web API for Lua, app-only (client credentials)",
  detailed = [[
A client for the Spotify Web API with the client-credentials flow: catalog
lookups, search, paging, token caching shared across processes, retries with
backoff, and non-blocking use from game loops and OpenResty. A small C core
on libcurl does the transport; the Lua layer holds the API.
Includes the `spotify` command-line tool.
]],
  homepage = "https://github.com/lua-spotify/lua-spotify",
  license = "MIT",
  labels = { "spotify", "http", "api", "openresty" },
}

dependencies = {
  "lua >= 5.1",
  "lua-cjson",
}

-- Found by the library alone: Debian keeps curl/curl.h under the multiarch
-- include directory, which the compiler searches but LuaRocks 3.8 does not.
external_dependencies = {
  CURL = {
    library = "curl",
  },
}

build = {
  type = "builtin",
  modules = {
    ["spotify"] = "lua/spotify/init.lua",
    ["spotify.batch"] = "lua/spotify/batch.lua",
    ["spotify.calls"] = "lua/spotify/calls.lua",
    ["spotify.catalog"] = "lua/spotify/catalog.lua",
    ["spotify.endpoints"] = "lua/spotify/endpoints.lua",
    ["spotify.errors"] = "lua/spotify/errors.lua",
    ["spotify.gateway"] = "lua/spotify/gateway.lua",
    ["spotify.ngx"] = "lua/spotify/ngx.lua",
    ["spotify.options"] = "lua/spotify/options.lua",
    ["spotify.paging"] = "lua/spotify/paging.lua",
    ["spotify.prometheus"] = "lua/spotify/prometheus.lua",
    ["spotify.responses"] = "lua/spotify/responses.lua",
    ["spotify.tasks"] = "lua/spotify/tasks.lua",
    ["spotify.types"] = "lua/spotify/types.lua",
    ["spotify.cache.file"] = "lua/spotify/cache/file.lua",
    ["spotify.cache.memory"] = "lua/spotify/cache/memory.lua",
    ["spotify.cache.redis"] = "lua/spotify/cache/redis.lua",
    ["spotify.cache.shdict"] = "lua/spotify/cache/shdict.lua",
    ["spotify.core"] = {
      sources = {
        "src/cache.c", "src/cache_lua.c", "src/client.c", "src/clock.c", "src/compose.c",
        "src/compat.c", "src/core.c", "src/digest.c", "src/engine.c", "src/errors.c",
        "src/exchange.c", "src/filecache.c", "src/filestore.c", "src/gather.c", "src/http.c",
        "src/ids.c", "src/json.c", "src/memcache.c", "src/policy.c", "src/ratelimit.c",
        "src/renewal.c", "src/responses.c", "src/token.c",
      },
      defines = { "_GNU_SOURCE" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
      libraries = { "curl", "m" },
    },
  },
  install = {
    bin = { spotify = "bin/spotify" },
  },
  copy_directories = { "examples" },
}

test_dependencies = {
  "busted",
}

test = {
  type = "busted",
}
