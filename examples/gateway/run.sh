#!/bin/sh
# Fill an nginx prefix with the gateway (nginx.conf, gateway.lua) and
# lua-spotify, then run nginx in the foreground (Ctrl-C stops it). Without
# SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET it starts the bundled fake
# Spotify and serves that.
#
#   PORT=8080           where the gateway listens (127.0.0.1)
#   PREFIX=DIR          the prefix to fill (default: a new directory in /tmp)
#   NGINX=/usr/sbin/nginx
#   SPOTIFY_REDIS=host:port, SPOTIFY_GATEWAY_KEYS=a,b: see gateway.lua
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PORT=${PORT:-8080}
NGINX=${NGINX:-/usr/sbin/nginx}
PREFIX=${PREFIX:-$(mktemp -d /tmp/spotify-gateway.XXXXXX)}
mkdir -p "$PREFIX/conf" "$PREFIX/logs" "$PREFIX/temp" "$PREFIX/lua" "$PREFIX/lib/spotify"

if [ ! -f "$root/build/luajit/spotify/core.so" ]; then
  echo "run.sh: build the module for nginx's LuaJIT first: make build LUAS=luajit" >&2
  exit 1
fi
rm -rf "$PREFIX/lua/spotify"
cp -R "$root/lua/spotify" "$PREFIX/lua/spotify"
cp "$root/build/luajit/spotify/core.so" "$PREFIX/lib/spotify/core.so"
cp "$here/gateway.lua" "$PREFIX/"
sed "s/listen 127.0.0.1:8080;/listen 127.0.0.1:$PORT;/" "$here/nginx.conf" > "$PREFIX/conf/nginx.conf"
chmod -R a+rX "$PREFIX"

fake=
if [ -z "$SPOTIFY_CLIENT_ID" ] || [ -z "$SPOTIFY_CLIENT_SECRET" ]; then
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
  echo "== no SPOTIFY_CLIENT_ID/SECRET: serving the bundled fake Spotify (http://127.0.0.1:$fport)"
fi

echo "== the gateway is at http://127.0.0.1:$PORT/v1 (nginx prefix $PREFIX)"
echo "   point a client at it (it needs no credentials):"
echo "     spotify.client{gateway = \"http://127.0.0.1:$PORT/v1\"}"
echo "     curl http://127.0.0.1:$PORT/v1/tracks/4iV5W9uYEdYUVa79Axb7Rh"
echo "   metrics: http://127.0.0.1:$PORT/metrics; logs: $PREFIX/logs/error.log; Ctrl-C stops it"
set -- "$NGINX" -p "$PREFIX/" -c conf/nginx.conf -e logs/error.log -g 'daemon off;'
if [ -n "$fake" ]; then "$@"; else exec "$@"; fi
