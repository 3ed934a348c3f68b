#!/bin/sh
# `make fake`: the bundled fake Spotify (spec/support/fake_spotify.py) in the
# foreground, for trying code without an account. Prints the settings to
# export in another shell; the library, the `spotify` command and the
# examples read them. Ctrl-C stops it.
#
#   FAKE_PORT=8000 make fake     a fixed port, so the exports survive a restart
set -e
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d /tmp/lua-spotify-fake.XXXXXX)
python3 spec/support/fake_spotify.py --demo --port "${FAKE_PORT:-0}" --port-file "$work/port" > /dev/null 2> "$work/err" &
pid=$!
trap 'kill "$pid" 2> /dev/null || true; rm -rf "$work"' EXIT
trap 'exit 0' INT TERM
tries=0
while [ ! -s "$work/port" ]; do
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ] || ! kill -0 "$pid" 2> /dev/null; then
    echo "fake: the fake Spotify did not start (is port ${FAKE_PORT:-0} taken?)" >&2
    tail -n 3 "$work/err" >&2
    exit 1
  fi
  sleep 0.1
done
port=$(cut -d' ' -f1 "$work/port")
cat << END
A fake Spotify (canned answers, not the real service) is listening on
http://127.0.0.1:$port. In another shell:

export SPOTIFY_CLIENT_ID=test-id
export SPOTIFY_CLIENT_SECRET=test-secret
export SPOTIFY_API_BASE=http://127.0.0.1:$port/v1
export SPOTIFY_TOKEN_URL=http://127.0.0.1:$port/api/token

END
if [ -f build/env.sh ]; then
  lua=$(sed -n 's/^SPOTIFY_LUA=//p' build/env.sh)
  echo "and this tree's module on $lua, as make demo built it:"
else
  echo "and this tree's module (make demo builds it first and writes build/env.sh):"
fi
cat << END

. "$root/build/env.sh"
"$root/bin/spotify" track 4iV5W9uYEdYUVa79Axb7Rh
"\$SPOTIFY_LUA" "$root/examples/catalog.lua"

Ctrl-C stops the fake.
END
wait "$pid"
