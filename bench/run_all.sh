#!/bin/sh
# run_all.sh: every benchmark of the targets in docs/performance.md in one go, then one table of the
# figures against their targets.
#
# Usage: bench/run_all.sh [--quick] [--compare] [BUILD_DIR]
#   --quick    shorter runs (3 runs of 3 s instead of 10 s; fewer query
#              requests): about 6 minutes instead of about 25
#   --compare  also run bench/statsd_compare.sh (tabad's StatsD chain beside
#              netdata, collectd and Etsy StatsD, those of them installed:
#              netdata-core, collectd-core, node and npm; Etsy StatsD is
#              installed once under BUILD_DIR)
# Or through CMake: cmake --build build --target bench
#
# Every scenario is a program or script of its own in bench/ (see each for
# details); this driver runs them in turn, keeps their full output in
# BUILD_DIR/bench-results/<scenario>.log and reads their summary lines.
# Servers are pinned to CPU 0 and load generators to CPU 1; every figure is
# the median of 3 runs. Scenarios whose tools are missing (redis-server for
# Redis mode) are reported as skipped, not failed.
set -u
QUICK=0
COMPARE=0
BUILD=build
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --compare) COMPARE=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) BUILD=$a ;;
  esac
done
HERE=$(dirname "$0")
OUT="$BUILD/bench-results"
mkdir -p "$OUT"
if [ "$QUICK" = 1 ]; then
  DUR=3; QREQ=200; QMERGE=50; VIS=20; PDUR=3
else
  DUR=10; QREQ=1000; QMERGE=200; VIS=40; PDUR=5
fi
for t in tabad bench/ingest_bench bench/query_bench bench/plugin_bench bench/statsd_bench bench/visibility_bench; do
  if [ ! -x "$BUILD/$t" ]; then
    echo "run_all: $BUILD/$t is missing; build first (cmake --build $BUILD -j2)" >&2
    exit 1
  fi
done

# key=value of the last line starting with PREFIX in FILE (matching FILTER).
kv() { # file prefix filter key
  grep "^$2" "$1" 2>/dev/null | grep -- "$3" | tail -1 | tr ' ' '\n' | sed -n "s/^$4=//p"
}
ROWS="$OUT/table.txt"
: >"$ROWS"
row() { # scenario | figure | target
  printf '%s|%s|%s\n' "$1" "$2" "$3" >>"$ROWS"
}
step() { echo "run_all: [$(date +%H:%M:%S)] $*" >&2; }

# 1. Ingest, embedded store.
step "ingest, embedded store (ingest_bench, 3 x ${DUR} s)"
"$BUILD/bench/ingest_bench" --runs 3 --duration "$DUR" >"$OUT/ingest.log" 2>&1
f=$OUT/ingest.log
row "ingest, embedded store: events per server CPU-second" "$(kv "$f" 'ingest_bench: events_per_s' '' events_per_server_cpu_s)" ">= 5,000,000 (stretch 10 M)"
row "ingest, embedded store: events/s on one core (wall)" "$(kv "$f" 'ingest_bench: events_per_s' '' events_per_s)" ""
row "ingest, embedded store: request p99 (ms, 10,000-event bodies)" "$(kv "$f" 'ingest_bench: events_per_s' '' p99_ms)" ""
row "peak RSS of the server after ingest (KB)" "$(kv "$f" 'ingest_bench: server_peak_rss_kb' '' server_peak_rss_kb)" ""

# 2. Ingest, Redis mode.
if command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null; then
  step "ingest, Redis mode (redis_bench.sh, 3 x ${DUR} s)"
  sh "$HERE/redis_bench.sh" "$BUILD" --runs 3 --duration "$DUR" >"$OUT/redis.log" 2>&1
  f=$OUT/redis.log
  row "ingest, Redis mode: events per fe CPU-second" "$(kv "$f" 'ingest_bench: events_per_s' '' events_per_server_cpu_s)" ""
  row "ingest, Redis mode: events per be CPU-second" "$(sed -n 's/^redis_bench: be CPU.*= \([0-9]*\) events per be CPU-second/\1/p' "$f")" ""
  row "ingest, Redis mode: Redis commands per 1,000 events" "$(sed -n 's/^redis_bench: redis commands [0-9]* = \([0-9.]*\) per.*/\1/p' "$f")" "one write per dirty (client, name)"
else
  row "ingest, Redis mode" "skipped: redis-server/redis-sentinel not installed" ""
fi

# 3. StatsD over UDP into the client-proxy.
step "StatsD over UDP (proxy_bench.sh, 3 x ${PDUR} s at 1 M lines/s)"
sh "$HERE/proxy_bench.sh" "$BUILD" 3 "$PDUR" 1000000 >"$OUT/statsd.log" 2>&1
f=$OUT/statsd.log
line=$(grep '^proxy_bench: rate 1000000' "$f" | tail -1)
row "StatsD: lines per proxy CPU-second at 1 M lines/s" "$(echo "$line" | sed -n 's/.*(\([0-9.]*\) lines per CPU-second).*/\1/p')" ">= 4,000,000"
row "StatsD: lines received at 1 M lines/s offered (%)" "$(echo "$line" | sed -n 's/.*loss \([0-9.]*\)%.*/\1/p' | awk '{ if ($1 != "") printf "%.2f", 100 - $1 }')" "100"

# 4. Query latency and merges.
step "queries (query_bench, 3 runs)"
"$BUILD/bench/query_bench" --runs 3 --requests "$QREQ" --merge-requests "$QMERGE" >"$OUT/query.log" 2>&1
f=$OUT/query.log
row "/tabs?name=X over 1,000 clients: p99 (ms)" "$(kv "$f" 'query_bench: kind=tabs_name ' 'type=mix accept=text' p99_ms)" "< 10"
row "/tabs (all 200 names x 1,000 clients): p99 (ms)" "$(kv "$f" 'query_bench: kind=tabs_all ' 'accept=text' p99_ms)" ""
row "merge of 10,000 CounterGroup states in a query: p99 (ms)" "$(kv "$f" 'query_bench: kind=merge_10k ' 'type=CounterGroup' p99_ms)" "< 50"
row "merge of 10,000 PercentileGroup states in a query: p99 (ms)" "$(kv "$f" 'query_bench: kind=merge_10k ' 'type=PercentileGroup' p99_ms)" "< 50"
row "server RSS per (client, name) state, 8 types mixed (bytes)" "$(grep '^query_bench: memory' "$f" | head -1 | tr ' ' '\n' | sed -n 's/^rss_bytes_per_state=//p')" ""
row "server peak RSS with 200,000 + 50,000 states (KB)" "$(grep '^query_bench: memory' "$f" | tail -1 | tr ' ' '\n' | sed -n 's/^vm_hwm_kb=//p')" ""

# 5. Handlers: merge of 10,000 day-of-data states, bytes per state.
step "handlers (plugin_bench)"
"$BUILD/bench/plugin_bench" --type CounterGroup >"$OUT/plugin.log" 2>&1
"$BUILD/bench/plugin_bench" --type PercentileGroup >>"$OUT/plugin.log" 2>&1
f=$OUT/plugin.log
cg=$(grep '^CounterGroup ' "$f" | tail -1)
pg=$(grep '^PercentileGroup ' "$f" | tail -1)
row "merge of 10,000 day-of-data CounterGroup states, in-process (ms)" "$(echo "$cg" | awk '{print $(NF-2)}')" "< 50"
row "merge of 10,000 day-of-data PercentileGroup states, in-process (ms)" "$(echo "$pg" | awk '{print $(NF-2)}')" "< 50"
row "CounterGroup state in memory, a day of data (bytes)" "$(echo "$cg" | awk '{print $NF}')" "<= 6,144"
row "CounterGroup state serialized, a day of data (bytes)" "$(echo "$cg" | awk '{print $(NF-1)}')" ""

# 6. Visibility.
step "visibility (visibility_bench.sh, $VIS samples)"
sh "$HERE/visibility_bench.sh" "$BUILD" "$VIS" >"$OUT/visibility.log" 2>&1
f=$OUT/visibility.log
row "visibility, client -> agent -> fe -> /tabs: p99 (ms)" "$(kv "$f" 'visibility_bench: via=client' '' p99_ms)" "< 2,000"
row "visibility, StatsD -> proxy -> agent -> fe: p99 (ms)" "$(kv "$f" 'visibility_bench: via=statsd' '' p99_ms)" "< 2,000"

# 7. The StatsD peers side by side (optional; the peers that are installed).
if [ "$COMPARE" = 1 ]; then
  targets="tabad-chain tabad-direct"
  [ -x /usr/sbin/netdata ] && targets="$targets netdata"
  [ -x /usr/sbin/collectd ] && targets="$targets collectd"
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && targets="$targets etsy"
  step "StatsD peers vs tabad's chain (statsd_compare.sh: $targets)"
  TARGETS=$targets sh "$HERE/statsd_compare.sh" "$BUILD" 3 "$PDUR" 100000 300000 1000000 >"$OUT/compare.log" 2>&1
  row "StatsD peers comparison" "see $OUT/compare.log" ""
fi

echo
printf '%-72s %-26s %s\n' "scenario (medians of 3 runs)" "measured" "target (docs/performance.md)"
printf '%-72s %-26s %s\n' "------------------------------------------------------------------------" "--------------------------" "-----------------"
while IFS='|' read -r name value target; do
  [ -z "$value" ] && value="(no figure: see $OUT)"
  printf '%-72s %-26s %s\n' "$name" "$value" "$target"
done <"$ROWS"
if [ "$COMPARE" = 1 ]; then
  echo
  sed -n '/medians of/,$p' "$OUT/compare.log"
fi
echo
echo "run_all: full outputs in $OUT/ ($(uname -n), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo unknown))"
