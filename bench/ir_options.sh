#!/bin/sh
# Instructions per request that each of the module's libcurl options
# (src/http.c) adds to the C binding floor (bench/floor.c, FLOOR_OPTS):
# callgrind, the difference of two run lengths. Needs `sh bench/run.sh serve`
# running (bench/out/serve.env) and bench/out/floor/<lua>/floor.so.
#
# usage: sh bench/ir_options.sh [LUA] [MODE]   (default: lua5.1 track)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/out/serve.env"
export BENCH_IDS
lua=${1:-lua5.1}
mode=${2:-track}
case $mode in track) n1=100 n2=1100 ;; search) n1=5 n2=45 ;; *) echo "mode: track | search" >&2; exit 2 ;; esac
ir() {
  FLOOR_OPTS=$1 LUA_CPATH="$here/out/floor/$lua/?.so;;" valgrind --tool=callgrind \
    --callgrind-out-file=/dev/null "$lua" "$here/floor.lua" "$mode" "$BENCH_HTTP/v1" \
    "$BENCH_HTTP/api/token" "$2" "" 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
per_request() { echo "$(ir "$1" $n2) $(ir "$1" $n1)" | awk -v d=$((n2 - n1)) '{ printf "%.0f", ($1 - $2) / d }'; }
all=header,errorbuffer,share,timeout,protocols,encoding,keepalive,maxfilesize,useragent,proxy
none=$(per_request "")
printf '%-12s %10s %8s\n' option Ir/req added
printf '%-12s %10s %8s\n' none "$none" -
for opt in header errorbuffer share timeout protocols encoding gzip keepalive maxfilesize useragent proxy "$all"; do
  v=$(per_request "$opt")
  name=$opt
  [ "$opt" = "$all" ] && name=all
  printf '%-12s %10s %8s\n' "$name" "$v" $((v - none))
done
