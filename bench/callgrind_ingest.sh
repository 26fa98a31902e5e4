#!/bin/sh
# callgrind_ingest.sh: instructions per ingested event of a tabad, which do
# not depend on the machine's load (unlike events per CPU-second).
#
# Runs TABAD under valgrind --tool=callgrind through ingest_bench (default
# workload, 2 connections), zeroes the counters after 20 s of load, dumps
# them 15 s later and divides by the events tabad counted in between
# (taba_events_received_total). Prints the total and writes OUT.1, which
# callgrind_annotate --inclusive=yes reads. Takes about a minute.
# Usage: bench/callgrind_ingest.sh [BUILD_DIR] [TABAD] [OUT]
set -eu
BUILD=${1:-build}
TABAD=$(realpath "${2:-$BUILD/tabad}")
OUT=${3:-/tmp/callgrind.tabad}
WRAP=$(mktemp /tmp/callgrind-tabad-XXXXXX)
trap 'rm -f "$WRAP"' EXIT
cat >"$WRAP" <<EOT
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$OUT --dump-instr=no $TABAD "\$@"
EOT
chmod +x "$WRAP"
rm -f "$OUT" "$OUT".*
"$BUILD/bench/ingest_bench" --tabad "$WRAP" --duration 40 --runs 1 --warmup 5 --timeout-ms 60000 \
  --connections 2 >"$OUT.bench.log" 2>&1 &
BENCH=$!
sleep 20
PID=$(pgrep -n -f "callgrind.*$TABAD")
PORT=$(tr '\0' ' ' <"/proc/$PID/cmdline" | sed 's/.*--listen 127.0.0.1:\([0-9]*\).*/\1/')
events() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^taba_events_received_total/ { print $2 }'; }
callgrind_control -z "$PID" >/dev/null
e0=$(events)
sleep 15
e1=$(events)
callgrind_control -d "$PID" >/dev/null
wait "$BENCH" || true
ir=$(callgrind_annotate "$OUT.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
awk -v ir="$ir" -v e0="$e0" -v e1="$e1" -v t="$TABAD" 'BEGIN {
  printf "callgrind_ingest: %s: %d events, %d instructions, %.0f instructions per event\n", t, e1 - e0, ir, ir / (e1 - e0) }'
