#!/bin/sh
# `make soak`: spec/soak.lua on Lua 5.4 with SOAK_REQUESTS requests (default
# 100 000) and random faults, under ASan+UBSan with leak detection (default,
# build-asan) or valgrind (SOAK_TOOL=valgrind, build/). The fake runs outside
# the sanitizer, so only the client is measured.
#
#   SOAK_REQUESTS=20000 SOAK_TOOL=valgrind sh spec/soak.sh
set -eu
cd "$(dirname "$0")/.."
tool=${SOAK_TOOL:-asan}
dir=$(mktemp -d /tmp/lua-spotify-soak.XXXXXX)

python3 spec/support/fake_spotify.py --port-file "$dir/port" > /dev/null &
fake_pid=$!
trap 'kill $fake_pid 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
while [ ! -s "$dir/port" ]; do sleep 0.1; done
SOAK_FAKE_PORT=$(cat "$dir/port")
export SOAK_FAKE_PORT

case $tool in
  asan)
    make --no-print-directory build BUILD=build-asan CMAKE_FLAGS=-DSPOTIFY_SANITIZE=ON
    asan=$(gcc -print-file-name=libasan.so)
    ubsan=$(gcc -print-file-name=libubsan.so)
    echo "soak: $tool, ${SOAK_REQUESTS:-100000} requests"
    # A small quarantine, so freed memory comes back and RSS shows real growth;
    # intercept_tls_get_addr=0 as in the Makefile's test-asan (a runtime bug).
    SPOTIFY_BUILD=build-asan/lua5.4 LD_PRELOAD="$asan $ubsan" \
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16:intercept_tls_get_addr=0 \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      lua5.4 spec/soak.lua
    ;;
  valgrind)
    echo "soak: $tool, ${SOAK_REQUESTS:-100000} requests"
    SPOTIFY_BUILD=build/lua5.4 valgrind -q --error-exitcode=1 --leak-check=full \
      --errors-for-leak-kinds=definite --show-leak-kinds=definite \
      lua5.4 spec/soak.lua
    ;;
  *)
    echo "soak: SOAK_TOOL must be asan or valgrind" >&2
    exit 2
    ;;
esac
