#!/bin/sh
# proxy_bench.sh: StatsD over UDP into tabad's client-proxy.
#
# Starts an fe (embedded store) and an agent pinned to CPU 1 and a
# client-proxy pinned to CPU 0, then statsd_bench (CPU 1) offers lines at
# each rate for DURATION seconds, RUNS times, and prints per run: lines
# offered, received, loss %, the proxy's CPU-seconds, CPU-seconds per
# million lines and lines per CPU-second, and wait_s: how long the proxy's
# threads were runnable but not running (another process had its CPU); a
# loss with a large wait_s is starvation, not the proxy being too slow.
# Then the medians per rate.
# Usage: bench/proxy_bench.sh [BUILD_DIR] [RUNS] [DURATION] [RATES...]
#   e.g. bench/proxy_bench.sh build 3 5 100000 300000 1000000
set -eu
BUILD=${1:-build}
RUNS=${2:-3}
DURATION=${3:-5}
[ $# -gt 3 ] && shift 3 || set --
RATES=${*:-100000 300000 1000000}
. "$(dirname "$0")/lib.sh"
bench_scratch proxy-bench
FEP=$BASE; AP=$((BASE + 1)); PP=$((BASE + 2)); UP=$((BASE + 3))
trap stop_all EXIT INT TERM

start_statsd_chain 33554432
for p in $FEP $AP $PP; do wait_answers "$p"; done
echo "proxy_bench: receive buffer: $(grep -o 'UDP receive buffer.*' "$DIR/proxy.log" || echo 'as asked')"
printf '%12s %10s %12s %12s %8s %9s %14s %14s %8s\n' "" "rate" "sent" "received" "loss%" "cpu_s" "cpu_s/M lines" "lines/cpu_s" "wait_s"
for rate in $RATES; do
  : >"$DIR/rate.txt"
  i=0
  while [ $i -lt "$RUNS" ]; do
    "$BUILD/bench/statsd_bench" --target "127.0.0.1:$UP" --rate "$rate" --duration "$DURATION" \
      --metrics "http://127.0.0.1:$PP/metrics" --pid "$PROXY" --bench-cpu 1 | tee -a "$DIR/rate.txt" | head -1
    i=$((i + 1))
  done
  grep '^statsd_bench:' "$DIR/rate.txt" | sed 's/.*loss_pct=\([^ ]*\).*cpu_s_per_million_lines=\([^ ]*\) lines_per_cpu_s=\([^ ]*\).*/\1 \2 \3/' |
    sort -n -k2 | awk -v rate="$rate" '{ l[NR] = $1; c[NR] = $2; p[NR] = $3 } END {
      m = int((NR + 1) / 2);
      printf "proxy_bench: rate %d lines/s: median cpu_s per million lines %s (%s lines per CPU-second), loss %s%% in that run\n", rate, c[m], p[m], l[m] }'
done
echo "proxy_bench: proxy status after the runs:"
curl -s "http://127.0.0.1:$PP/status"
