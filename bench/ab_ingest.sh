#!/bin/sh
# ab_ingest.sh: compares tabad builds fairly on a noisy machine by
# alternating them run by run (each run starts a fresh server with
# ingest_bench), then prints each build's median events per server
# CPU-second. Each TABAD must have its plugins/ directory next to it.
# Usage: bench/ab_ingest.sh BUILD_DIR ROUNDS TABAD... [-- ingest_bench options]
#   e.g. bench/ab_ingest.sh build 5 /tmp/ab/OLD/tabad /tmp/ab/NEW/tabad -- --duration 3
set -eu
BUILD=$1
ROUNDS=$2
shift 2
BINS=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do BINS="$BINS $1"; shift; done
[ $# -gt 0 ] && shift
RES=$(mktemp /tmp/ab-ingest-XXXXXX)
trap 'rm -f "$RES"' EXIT
i=0
while [ $i -lt "$ROUNDS" ]; do
  for b in $BINS; do
    r=$("$BUILD/bench/ingest_bench" --tabad "$b" --runs 1 --warmup 1 "$@" 2>&1 |
      sed -n 's/^ingest_bench: events_per_s.* events_per_server_cpu_s=\([0-9]*\).*/\1/p')
    echo "$b ${r:-0}" >>"$RES"
  done
  i=$((i + 1))
done
for b in $BINS; do
  grep "^$b " "$RES" | awk '{ print $2 }' | sort -n | awk -v b="$b" '{ v[NR] = $1; s = s " " $1 } END {
    printf "ab_ingest: %s: median %d events per server CPU-second (runs:%s)\n", b, v[int((NR + 1) / 2)], s }'
done
