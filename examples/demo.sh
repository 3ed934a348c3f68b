#!/bin/sh
# `make demo`: catalog data in one command, with no Spotify account.
#
# Starts the bundled fake Spotify (spec/support/fake_spotify.py) on loopback,
# runs examples/catalog.lua, examples/game_loop.lua and the `spotify` command
# against it, then stops it.
#
#   LUA=luajit make demo              another interpreter (lua5.1 ... lua5.4, luajit)
#   SPOTIFY_DEMO=live make demo       the real Spotify, with SPOTIFY_CLIENT_ID and
#                                     SPOTIFY_CLIENT_SECRET from the environment
set -e
cd "$(dirname "$0")/.."
root=$(pwd)
LUA=${LUA:-lua5.4}

# The module from this tree, as `make build` left it for $LUA.
LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;"
LUA_CPATH="$root/build/$LUA/?.so;;"
export LUA_PATH LUA_CPATH
unset LUA_PATH_5_4 LUA_CPATH_5_4 LUA_INIT LUA_INIT_5_4
if [ ! -f "build/$LUA/spotify/core.so" ]; then
  echo "demo: build/$LUA/spotify/core.so is missing; run make build LUAS=$LUA" >&2
  exit 1
fi
# What the next steps need, for `. build/env.sh` (examples/env.sh says what).
env_file=build/env.sh
sh examples/env.sh "$LUA" > "$env_file"

if [ "${SPOTIFY_DEMO:-fake}" = live ]; then
  if [ -z "$SPOTIFY_CLIENT_ID" ] || [ -z "$SPOTIFY_CLIENT_SECRET" ]; then
    echo "demo: SPOTIFY_DEMO=live needs SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET" >&2
    exit 1
  fi
  unset SPOTIFY_API_BASE SPOTIFY_TOKEN_URL
  echo "== Talking to the REAL Spotify Web API (api.spotify.com) with your credentials"
else
  work=$(mktemp -d /tmp/lua-spotify-demo.XXXXXX)
  python3 spec/support/fake_spotify.py --demo --port-file "$work/port" > /dev/null &
  fake_pid=$!
  stop_fake() {
    kill "$fake_pid" 2> /dev/null || true
    wait "$fake_pid" 2> /dev/null || true
    rm -rf "$work"
    echo "== Stopped the local fake Spotify"
  }
  trap stop_fake EXIT
  trap 'exit 130' INT TERM
  tries=0
  while [ ! -s "$work/port" ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$fake_pid" 2> /dev/null; then
      echo "demo: the fake Spotify did not start" >&2
      exit 1
    fi
    sleep 0.1
  done
  port=$(cut -d' ' -f1 "$work/port")
  SPOTIFY_CLIENT_ID=test-id
  SPOTIFY_CLIENT_SECRET=test-secret
  SPOTIFY_API_BASE="http://127.0.0.1:$port/v1"
  SPOTIFY_TOKEN_URL="http://127.0.0.1:$port/api/token"
  export SPOTIFY_CLIENT_ID SPOTIFY_CLIENT_SECRET SPOTIFY_API_BASE SPOTIFY_TOKEN_URL
  echo "== Talking to the LOCAL FAKE Spotify at http://127.0.0.1:$port (not the real service)."
  echo "   Its answers are canned fixtures; run with SPOTIFY_DEMO=live for the real thing."
fi

echo
echo "== $LUA examples/catalog.lua"
"$LUA" examples/catalog.lua

echo
echo "== $LUA examples/game_loop.lua"
"$LUA" examples/game_loop.lua

run_cli() {
  echo
  echo "== spotify $*"
  SPOTIFY_LUA=$LUA bin/spotify "$@"
}
run_cli track 4iV5W9uYEdYUVa79Axb7Rh
run_cli album spotify:album:4EcfbzCtbJDk2wMwhT4D1h
run_cli search "Muse" --type track,artist --limit 3
run_cli playlist 3cEYpjA9oz9GiPac4AsH4n
run_cli items playlist 3cEYpjA9oz9GiPac4AsH4n --max 5
run_cli token

step() { printf '  %-38s  %s\n' "$1" "$2"; }
echo
echo "== Next steps, on $LUA (the interpreter this demo built for)"
step ". $env_file" "this tree's module on $LUA in your shell:"
step "" "LUA_PATH, LUA_CPATH, and SPOTIFY_LUA=$LUA"
step "make fake" "the fake Spotify in the foreground, with the lines"
step "" "to export so your code and the command talk to it"
step "\"\$SPOTIFY_LUA\" examples/catalog.lua" "an example (after the first line), i.e. $LUA examples/catalog.lua"
step "bin/spotify search Muse -t artist" "the command, on $LUA; bin/spotify help lists the rest"
step "make doc" "the reference: build/doc/index.html"
step "SPOTIFY_DEMO=live make demo" "the same against Spotify, with SPOTIFY_CLIENT_ID and"
step "" "SPOTIFY_CLIENT_SECRET of an app from https://developer.spotify.com/dashboard"
