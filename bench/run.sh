#!/bin/sh
# `make bench`: starts nginx on loopback with static Spotify-like answers
# (HTTP/1.1, and HTTPS with HTTP/2 under a self-signed certificate made
# here), builds the C binding floor (bench/floor.c) per interpreter, installs
# the official TypeScript SDK into bench/node_modules, runs every driver
# interleaved (bench/bench.py) and prints one table.
#
# Environment:
#   BENCH_ROUNDS=3      rounds of the interleaved runs (medians are reported)
#   BENCH_LONG=0        skip the 100 000-request RSS runs
#   BENCH_SDK=0         skip the TypeScript SDK (no npm needed)
#   BENCH_ONLY=a,b      only the rows whose name contains one of these words
#   BENCH_SCALE=0.1     scale every request count (quick look)
#   BENCH_IR=1          also count instructions per request (callgrind) for
#                       this module and the baseline: slow, but immune to load
#   BENCH_SERVER_CPU=0  BENCH_CLIENT_CPU=1   cores for nginx and the clients
#   BENCH_LUA_DIR=lua   BENCH_BUILD_DIR=build  the module under test (a candidate
#                       change can be measured from another tree)
#
# `sh bench/run.sh serve` only starts the fake and waits (for profiling by
# hand); bench/out/serve.env then holds BENCH_HTTP, BENCH_HTTPS, BENCH_CA
# and BENCH_IDS.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
server_cpu=${BENCH_SERVER_CPU:-0}

rm -rf "$out/nginx" "$out/logs"
mkdir -p "$out/www" "$out/nginx" "$out/logs"

python3 "$here/make_fixtures.py" "$root/spec/support/fixtures" "$out/www"

# The C binding floor (bench/floor.c), one build per interpreter it covers,
# with the module's optimisation level.
for lua in lua5.1 lua5.4; do
  mkdir -p "$out/floor/$lua"
  cc -O2 -g -shared -fPIC -Wall -Wextra -Werror -I"/usr/include/$lua" \
    -o "$out/floor/$lua/floor.so" "$here/floor.c" -lcurl
done

if [ ! -s "$out/cert.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$out/key.pem" -out "$out/cert.pem" -days 30 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
http_port=$(free_port)
https_port=$(free_port)
while [ "$https_port" = "$http_port" ]; do https_port=$(free_port); done
token=$(cat "$out/www/token.json")

# One worker without a master process, pinned to its own core. Keep-alive
# limits are raised so that a connection serves a whole run. Without a master
# nginx keeps the invoking user (no switch to nobody), so it reads bench/out
# even in a tree inside a private (0700) folder.
cat >"$out/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $out/nginx/nginx.pid;
error_log $out/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $out/nginx/body;
  proxy_temp_path $out/nginx/proxy;
  fastcgi_temp_path $out/nginx/fastcgi;
  uwsgi_temp_path $out/nginx/uwsgi;
  scgi_temp_path $out/nginx/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  sendfile on;
  tcp_nodelay on;
  open_file_cache max=16 inactive=600s;
  default_type application/json;
  server {
    listen 127.0.0.1:$http_port;
    listen 127.0.0.1:$https_port ssl http2;
    ssl_certificate $out/cert.pem;
    ssl_certificate_key $out/key.pem;
    root $out/www;
    # Static files answer 405 to POST: the token endpoint is inline.
    location = /api/token { default_type application/json; return 200 '$token'; }
    location = /v1/search { try_files /search.json =404; }
    location = /v1/tracks { try_files /tracks50.json =404; }
    location /v1/tracks/ { try_files /track.json =404; }
  }
}
EOF

taskset -c "$server_cpu" nginx -p "$out/nginx" -c "$out/nginx/nginx.conf" \
  -g 'daemon off; master_process off;' &
nginx_pid=$!
trap 'kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true' EXIT INT TERM

up=no
for _ in $(seq 50); do
  if curl -s -o /dev/null "http://127.0.0.1:$http_port/v1/tracks/x"; then up=yes; break; fi
  kill -0 "$nginx_pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$up" != yes ]; then
  echo "bench: nginx did not start; see $out/nginx/error.log" >&2
  exit 1
fi

if [ "${1:-}" = serve ]; then
  {
    echo "BENCH_HTTP=http://127.0.0.1:$http_port"
    echo "BENCH_HTTPS=https://127.0.0.1:$https_port"
    echo "BENCH_CA=$out/cert.pem"
    echo "BENCH_IDS=$out/www/ids.txt"
  } >"$out/serve.env"
  echo "bench: serving; see $out/serve.env" >&2
  wait "$nginx_pid"
  exit 0
fi

# The SDK rows need npm; without it (or without the registry) they are left
# out and said so, rather than losing every other row.
if [ "${BENCH_SDK:-1}" != 0 ]; then
  command -v npm >/dev/null || "$root/.ci/install-deps" npm || true
  if [ ! -d "$here/node_modules/@spotify/web-api-ts-sdk" ] &&
    ! (cd "$here" && npm install --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null); then
    echo "bench: could not install @spotify/web-api-ts-sdk; its rows are skipped" >&2
    BENCH_SDK=0
    export BENCH_SDK
  fi
fi

python3 "$here/bench.py" \
  --root "$root" --out "$out" \
  --http "http://127.0.0.1:$http_port" --https "https://127.0.0.1:$https_port" \
  --ca "$out/cert.pem" --server-pid "$nginx_pid"
