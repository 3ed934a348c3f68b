#!/bin/sh
# The timing-sensitive spec files, STRESS_RUNS times in a row on each of
# STRESS_LUAS, beside a CPU burner (one busy process that stops itself after
# STRESS_MAX_SECONDS, and is stopped when the runs end). Stops at the first
# failed run and prints its failures; the last line counts the green runs.
#
#   STRESS_RUNS=5 STRESS_LUAS=luajit STRESS_SPECS=spec/chaos_spec.lua sh spec/stress.sh
set -u
runs=${STRESS_RUNS:-20}
luas=${STRESS_LUAS:-"lua5.2 luajit"}
specs=${STRESS_SPECS:-"spec/chaos_spec.lua spec/nonblocking_spec.lua spec/catalog_spec.lua spec/engine_spec.lua"}
limit=${STRESS_MAX_SECONDS:-3600}
build=${BUILD:-build}
mkdir -p "$build"

timeout "$limit" sh -c 'while :; do :; done' &
burner=$!
trap 'kill "$burner" 2>/dev/null' EXIT
trap 'exit 130' INT TERM

green=0
for lua in $luas; do
  i=0
  while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    log="$build/stress-$lua.log"
    # shellcheck disable=SC2086
    if SPOTIFY_BUILD="$build/$lua" "$lua" /usr/bin/busted --run="$lua" -o TAP $specs > "$log" 2>&1; then
      green=$((green + 1))
      echo "$lua: run $i of $runs green ($(grep -c '^ok' "$log") specs)"
    else
      echo "$lua: run $i of $runs FAILED (log: $log)"
      grep -A8 '^not ok' "$log" | head -40
      echo "stress: $green green runs before the failure"
      exit 1
    fi
  done
done
echo "stress: $green runs green ($runs on each of: $luas) beside a CPU burner"
