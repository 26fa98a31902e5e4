#!/bin/sh
# ab_all.sh: two builds compared fairly on a noisy machine, run by run
# alternated, on the three paths users notice: HTTP ingest on the embedded
# store (bench/ab_ingest.sh), queries (query_bench: /tabs over 1,000 clients,
# 10,000-state merges) and StatsD through the whole chain (client-proxy ->
# agent -> fe, bench/proxy_bench.sh at 1 M lines/s). Each BUILD_DIR is a
# build tree with tabad, plugins/ and bench/ built; the query client is the
# NEW tree's query_bench for both. Logs go to $OUT (default /tmp/ab_all).
# Usage: bench/ab_all.sh OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS]
#   e.g. bench/ab_all.sh /tmp/old/build build 3
set -eu
OLD=$1
NEW=$2
ROUNDS=${3:-3}
HERE=$(dirname "$0")
OUT=${OUT:-/tmp/ab_all}
mkdir -p "$OUT"
echo "== ingest (embedded store, HTTP ingest, server CPU 0, load CPU 1)"
"$HERE/ab_ingest.sh" "$NEW" $((ROUNDS * 2 + 1)) "$OLD/tabad" "$NEW/tabad" -- --duration 3
echo "== queries: p50 and p99 in ms"
i=1
while [ $i -le "$ROUNDS" ]; do
  for b in OLD NEW; do
    eval d=\$$b
    "$NEW/bench/query_bench" --tabad "$d/tabad" --runs 1 --requests 300 --merge-requests 60 >"$OUT/query-$b-$i.log" 2>&1
    echo "$b $i: $(grep -E 'kind=tabs_name .*type=mix accept=text|kind=tabs_all .*accept=text|kind=merge_10k .*type=(CounterGroup|PercentileGroup)' \
      "$OUT/query-$b-$i.log" | grep -o 'kind=[a-z_0-9]*\|type=[A-Za-z]*\|p50_ms=[0-9.]*\|p99_ms=[0-9.]*' | tr '\n' ' ')"
  done
  i=$((i + 1))
done
echo "== StatsD (client-proxy -> agent -> fe, 1 M lines/s offered, 5 s)"
i=1
while [ $i -le "$ROUNDS" ]; do
  for b in OLD NEW; do
    eval d=\$$b
    sh "$HERE/proxy_bench.sh" "$d" 1 5 1000000 >"$OUT/proxy-$b-$i.log" 2>&1
    echo "$b $i: $(grep 'median' "$OUT/proxy-$b-$i.log" | tail -1)"
  done
  i=$((i + 1))
done
