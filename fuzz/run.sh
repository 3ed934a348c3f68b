#!/bin/sh
# Builds one libFuzzer binary per parser of untrusted input (fuzz/ngx.lua:
# the nginx driver's response reader over stand-in cosockets), and one for the
# exchange machine (fuzz/engine.lua: random event sequences) (clang,
# -fsanitize=fuzzer,address,undefined, src/*.c compiled in, Lua 5.4 linked
# in) and runs each for FUZZ_SECONDS (default 60), printing its executions.
# A crash, a sanitizer report or a broken invariant fails the run and leaves
# the input in build-fuzz/crash-<target>-*.
#
#   FUZZ_SECONDS=10 FUZZ_TARGETS="ids json" sh fuzz/run.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build-fuzz"
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"ids query classify token json filecache engine ngx"}
CC=${FUZZ_CC:-clang}
mkdir -p "$out/tmp"

build() {
  $CC -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -D_GNU_SOURCE -Wall -Wextra -Werror -I/usr/include/lua5.4 -I"$root/src" \
    -DSPOTIFY_ROOT="\"$root\"" -DFUZZ_SCRIPT="$1" \
    "$root/fuzz/target.c" "$root"/src/*.c -llua5.4 -lcurl -lm -o "$out/fuzz_$1"
}

# A few valid inputs per target, so the fuzzer starts from real shapes.
seed() {
  dir="$out/corpus/$1"
  mkdir -p "$dir"
  case $1 in
    ids)
      printf '\000spotify:track:4iV5W9uYEdYUVa79Axb7Rh' > "$dir/uri"
      printf '\001https://open.spotify.com/intl-de/album/4iV5W9uYEdYUVa79Axb7Rh?si=x' > "$dir/url"
      printf '\003spotify:user:bob:playlist:4iV5W9uYEdYUVa79Axb7Rh' > "$dir/old-uri"
      printf '\010john.smith_01' > "$dir/user"
      printf '\011https://open.spotify.com/embed/category/dinner' > "$dir/category" ;;
    query)
      printf '\000\005\006marketUS\003\004\013typetrack\001album' > "$dir/lists"
      printf '\001\005\010limit\000\000\000\000\000\000\044\100' > "$dir/number" ;;
    classify)
      printf '\255\001\000\000\002 120 ' > "$dir/429"
      printf '\364\001\000\000\001Sun, 06 Nov 1994 08:49:37 GMT' > "$dir/date"
      printf '{"error":{"status":404,"message":"Not found"}}' > "$dir/body" ;;
    token)
      cp "$root/spec/support/fixtures/token"*.json "$dir/"
      printf '{"access_token":"t","token_type":"bearer","expires_in":1e308}' > "$dir/big" ;;
    json)
      cp "$root/spec/support/fixtures/"*.json "$dir/" ;;
    engine)
      printf '\000' > "$dir/plain"
      printf '\001\002\001\002\001\001\001\003\001\001\002\001' > "$dir/retries"
      printf '\003\004\002\001\001\003\003\003\005\001\002\003\004\005' > "$dir/paced" ;;
    ngx)
      printf '\020\001HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}' > "$dir/length"
      printf '\005\001HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1\r\n}\r\n0\r\n\r\n' \
        > "$dir/chunked"
      printf '\040\001HTTP/1.0 200 OK\r\n\r\n{"id":"x"}' > "$dir/to-close"
      printf '\003\001HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n' \
        > "$dir/informational"
      printf '\010\004HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n{"access_token":"t","token_type":"Bearer","expires_in":3600}' \
        > "$dir/token" ;;
    filecache)
      printf '{"test-id":{"value":"{\\"access_token\\":\\"t\\",\\"expires_at\\":9e9}","expires":9e9}}' \
        > "$dir/entry" ;;
  esac
}

status=0
printf '%-10s %12s %8s\n' target executions seconds
for t in $targets; do
  build "$t"
  seed "$t"
  dict=
  case $t in token | json | classify) dict="-dict=$root/fuzz/json.dict" ;; esac
  set +e
  FUZZ_TMP="$out/tmp" ASAN_OPTIONS=abort_on_error=1 \
    "$out/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -max_len=65536 $dict \
    -artifact_prefix="$out/crash-$t-" "$out/corpus/$t" > "$out/$t.log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log")
  printf '%-10s %12s %8s\n' "$t" "${execs:-?}" "$seconds"
  if [ $rc -ne 0 ]; then
    echo "fuzz_$t failed (exit $rc); see $out/$t.log:" >&2
    grep -E 'ERROR|invariant|raised|SUMMARY|runtime error' "$out/$t.log" | head -20 >&2
    status=1
  fi
done
exit $status
