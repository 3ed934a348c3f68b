#!/bin/sh
# Prints the settings that put this tree's module on one interpreter's
# path, for `. build/env.sh` (`make demo` writes that file with this):
#
#   sh examples/env.sh lua5.4 [BUILD_DIR] > build/env.sh
#
# LUA_PATH / LUA_CPATH name this tree's Lua files and the C core in
# BUILD_DIR (default build/<interpreter>); SPOTIFY_LUA names the
# interpreter, which bin/spotify runs on. Lua 5.2+ reads LUA_PATH_5_x
# before LUA_PATH, so those of this interpreter are unset.
set -e
lua=${1:?usage: examples/env.sh <lua5.1|lua5.2|lua5.3|lua5.4|luajit> [build dir]}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-build/$lua}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
case "$lua" in
  lua5.[2-4]) v=$(echo "$lua" | sed 's/^lua5\./5_/'); versioned="LUA_PATH_$v LUA_CPATH_$v" ;;
  *) versioned= ;;
esac
cat << END
# lua-spotify from $root on $lua: \`. build/env.sh\`, then e.g.
#   "\$SPOTIFY_LUA" examples/catalog.lua      bin/spotify search Muse
SPOTIFY_LUA=$lua
LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;"
LUA_CPATH="$build/?.so;;"
export SPOTIFY_LUA LUA_PATH LUA_CPATH
END
if [ -n "$versioned" ]; then echo "unset $versioned"; fi
