#!/bin/sh
# Fill an nginx prefix with this example and lua-spotify, then run nginx in
# the foreground (Ctrl-C stops it).
#
#   examples/nginx/run.sh --fake     against the bundled fake Spotify (no account)
#   SPOTIFY_CLIENT_ID=... SPOTIFY_CLIENT_SECRET=... examples/nginx/run.sh
#
# The module comes from this tree when `make build LUAS=luajit` has built it,
# else from a `luarocks --lua-version 5.1 make --local` install. Both are
# copied into the prefix: nginx's workers run as nobody when nginx starts
# as root and cannot read a home folder, but they read the prefix.
#
#   PORT=8080           where nginx listens (127.0.0.1 and every address)
#   PREFIX=DIR          the prefix to fill (default: a new directory in /tmp)
#   NGINX=/usr/sbin/nginx
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PORT=${PORT:-8080}
NGINX=${NGINX:-/usr/sbin/nginx}
PREFIX=${PREFIX:-$(mktemp -d /tmp/spotify-api.XXXXXX)}
mkdir -p "$PREFIX/conf" "$PREFIX/logs" "$PREFIX/temp" "$PREFIX/lua" "$PREFIX/lib/spotify"

# The module: this tree's, or the one luarocks installed for Lua 5.1.
if [ -f "$root/build/luajit/spotify/core.so" ] && [ -f "$root/lua/spotify/init.lua" ]; then
  lua_dir="$root/lua/spotify"
  core="$root/build/luajit/spotify/core.so"
else
  eval "$(luarocks --lua-version 5.1 path --local)"
  found=$(luajit -e 'print(package.searchpath("spotify", package.path) .. " " ..
    package.searchpath("spotify.core", package.cpath))' 2> /dev/null) || {
    echo "run.sh: lua-spotify is neither built in this tree (make build LUAS=luajit)" >&2
    echo "        nor installed for Lua 5.1 (luarocks --lua-version 5.1 make --local ...)" >&2
    exit 1
  }
  lua_dir=$(dirname "${found% *}")
  core=${found#* }
fi
rm -rf "$PREFIX/lua/spotify"
cp -R "$lua_dir" "$PREFIX/lua/spotify"
cp "$core" "$PREFIX/lib/spotify/core.so"
cp "$here/spotify_api.lua" "$PREFIX/"
sed "s/listen 8080;/listen $PORT;/" "$here/nginx.conf" > "$PREFIX/conf/nginx.conf"
chmod -R a+rX "$PREFIX"

fake=
if [ "$1" = --fake ]; then
  python3 "$root/spec/support/fake_spotify.py" --demo --port-file "$PREFIX/fake.port" > /dev/null &
  fake=$!
  trap 'kill "$fake" 2> /dev/null || true' EXIT
  trap 'exit 0' INT TERM
  while [ ! -s "$PREFIX/fake.port" ]; do
    kill -0 "$fake" 2> /dev/null || { echo "run.sh: the fake Spotify did not start" >&2; exit 1; }
    sleep 0.1
  done
  fport=$(cut -d' ' -f1 "$PREFIX/fake.port")
  SPOTIFY_CLIENT_ID=test-id SPOTIFY_CLIENT_SECRET=test-secret
  SPOTIFY_API_BASE=http://127.0.0.1:$fport/v1 SPOTIFY_TOKEN_URL=http://127.0.0.1:$fport/api/token
  export SPOTIFY_CLIENT_ID SPOTIFY_CLIENT_SECRET SPOTIFY_API_BASE SPOTIFY_TOKEN_URL
  echo "== the fake Spotify (canned answers) is at http://127.0.0.1:$fport"
fi

echo "== nginx in $PREFIX on port $PORT; try:  curl localhost:$PORT/track/4iV5W9uYEdYUVa79Axb7Rh"
echo "   (logs: $PREFIX/logs/error.log; Ctrl-C stops it)"
set -- "$NGINX" -p "$PREFIX/" -c conf/nginx.conf -e logs/error.log -g 'daemon off;'
if [ -n "$fake" ]; then "$@"; else exec "$@"; fi
