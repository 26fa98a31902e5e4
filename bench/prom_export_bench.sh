#!/bin/bash
# prom_export_bench.sh: the Prometheus export of the tabs (GET /metrics/tabs,
# docs/prometheus.md) on a server holding 10,000 tabs x 100 clients: how
# long a scrape takes, what it costs the server, and how much it stalls
# ingest meanwhile.
#
# Setting (as users run it): one tabad, roles fe and be with the embedded
# store (own taba_* tabs off, so that it holds exactly the benchmark's
# names), on loopback, pinned to SERVER_CPU; the load (bench/prom_export_load)
# on the same host, pinned to LOAD_CPU. Steps:
#   1. fill: 10,000 names (40 % CounterGroup, 30 % PercentileGroup, 20 %
#      Gauge with numbers, 10 % TotalsCounter; a third with the tags
#      ";env=prod;region=us-N", a sixth ";host=web-N"; a quarter valid
#      Prometheus names, the rest dotted) x 100 clients, 3 events each, in
#      v1 posts; checks that /names lists 10,000 names and that every event
#      is counted; the server's VmRSS / VmHWM before and after;
#   2. exposition: SCRAPES sequential GETs in the text format 0.0.4, then as
#      many with Prometheus's Accept header (OpenMetrics): wall time
#      (median, min, max), the route's own time, bytes, sample lines, server
#      CPU per scrape; then 3 GETs of each type's tabs alone (the cost per
#      256 tabs of that type); then 3 GETs through curl for the time
#      to the first byte;
#   3. ingest stall: a closed loop of posts of 50 events (one per (client,
#      name), walking over all of them, so every tab stays live) on 2
#      connections, ROUNDS rounds of phase A (no scrapes, PHASE_S seconds)
#      then phase B (a Prometheus-like scrape every second): per phase the
#      post latency p50/p99/max, events/s, the largest latency of a post that
#      overlapped a scrape, the scrapes' times and the store snapshots that
#      fell in the phase; beside the posts, GET /healthz every 5 ms: how long
#      the loop went without reading a socket.
# It prints each step's lines, then a table of the figures (phase figures
# are medians over the rounds). The script builds nothing: build tabad, the
# plugins and bench/prom_export_load first. Before GET /metrics/tabs exists
# it scrapes GET /metrics?tabs=1 instead (and says so).
#
# Usage: bench/prom_export_bench.sh [BUILD_DIR] [--rounds N] [--phase-s S] [--scrapes N]
#   BUILD_DIR     holds tabad, plugins/ and bench/prom_export_load (default build)
#   --rounds N    A/B rounds of the stall measurement (default 3)
#   --phase-s S   seconds per phase (default 10)
#   --scrapes N   sequential GETs per format (default 7)
# The environment can change: SERVER_CPU (default 0) and LOAD_CPU (default
# 1), taskset lists ("0-1": not pinned); NAMES (10000), CLIENTS (100),
# SCRAPE_PATH (auto). Runs in about 3 to 6 minutes; each step is cut off
# after 15 minutes.
# Needs curl and taskset.
set -eu
BUILD=build
ROUNDS=3
PHASE_S=10
SCRAPES=7
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds|--phase-s|--scrapes)
      [ $# -ge 2 ] || { echo "$0: $1 needs a number" >&2; exit 2; }
      case "$1" in --rounds) ROUNDS=$2 ;; --phase-s) PHASE_S=$2 ;; *) SCRAPES=$2 ;; esac
      shift 2 ;;
    -h|--help) sed -n '2,/^# Needs/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "$0: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) BUILD=$1; shift ;;
  esac
done
for n in "$ROUNDS" "$PHASE_S" "$SCRAPES"; do
  case "$n" in ''|*[!0-9]*|0) echo "$0: --rounds, --phase-s and --scrapes take a positive whole number, not \"$n\"" >&2; exit 2 ;; esac
done
for t in tabad bench/prom_export_load; do
  [ -x "$BUILD/$t" ] || { echo "$0: $BUILD/$t is missing; build it (cmake --build $BUILD --target ${t#bench/})" >&2; exit 1; }
done
for p in counter_group percentile_group gauge totals_counter; do
  ls "$BUILD"/plugins/*"$p"* >/dev/null 2>&1 || { echo "$0: plugin $p is missing in $BUILD/plugins; build it" >&2; exit 1; }
done
for t in curl taskset; do
  command -v "$t" >/dev/null || { echo "$0: $t is missing" >&2; exit 1; }
done
. "$(dirname "$0")/lib.sh"

SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
NAMES=${NAMES:-10000}
CLIENTS=${CLIENTS:-100}
SCRAPE_PATH=${SCRAPE_PATH:-auto}
STEP_LIMIT=900

bench_scratch prom-export-bench
FEP=$BASE
trap stop_all EXIT INT TERM
say() { echo "prom_export_bench: [$(date +%H:%M:%S)] $*" >&2; }
# The load average and the busiest other processes (the host may be shared).
machine() {
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs; busiest:" \
    "$(top -b -n 2 -d 1 -o %CPU | awk '/^top -/ { n++ } n == 2 && $1 ~ /^[0-9]+$/ && c++ < 3 { printf "%s%s %s%%", (c > 1 ? ", " : ""), $12, $9 }')"
}

fe_config "$FEP" "self_tabs_interval_s = 0" >"$DIR/fe.toml"
start_tabad "$SERVER_CPU" fe --config "$DIR/fe.toml"
FE=$TABAD_PID
wait_answers "$FEP"
URL="http://127.0.0.1:$FEP"
LOAD="timeout $STEP_LIMIT taskset -c $LOAD_CPU $BUILD/bench/prom_export_load --server $URL --pid $FE"
LOAD="$LOAD --names $NAMES --clients $CLIENTS --path $SCRAPE_PATH"
OUT=$DIR/out.txt
MACHINE_START=$(machine)

say "tabad pid $FE on CPU $SERVER_CPU, load on CPU $LOAD_CPU; $MACHINE_START"
say "fill: $NAMES names x $CLIENTS clients"
$LOAD --mode fill | tee -a "$OUT"
say "exposition: $SCRAPES GETs per format"
$LOAD --mode expose --scrapes "$SCRAPES" | tee -a "$OUT"
P=$(sed -n 's/^prom_export_load: expose path=\([^ ]*\) .*/\1/p' "$OUT" | head -1)
for n in 1 2 3; do
  curl -s -o /dev/null -H 'Accept: text/plain;version=0.0.4' \
    -w "curl n=$n ttfb_s=%{time_starttransfer} total_s=%{time_total} bytes=%{size_download}\n" "$URL$P"
done | tee -a "$OUT"
say "ingest stall: $ROUNDS rounds of A (no scrapes) and B (a scrape every second), $PHASE_S s each"
$LOAD --mode stall --rounds "$ROUNDS" --phase-s "$PHASE_S" | tee -a "$OUT"
MACHINE_END=$(machine)
grep -i -E 'warn|error' "$DIR/fe.log" | tail -5 | sed 's/^/prom_export_bench: tabad logged: /' >&2 || true

# key=value of the first line of OUT starting with PREFIX (and matching FILTER).
kv() { # prefix filter key
  grep "^$1" "$OUT" | grep -- "$2" | head -1 | tr ' ' '\n' | sed -n "s/^$3=//p"
}
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
row() { printf '%-58s %s\n' "$1" "$2"; }
ttfb=$(grep '^curl ' "$OUT" | tr ' ' '\n' | sed -n 's/^ttfb_s=//p' | sort -n | sed -n 2p)
curl_total=$(grep '^curl ' "$OUT" | tr ' ' '\n' | sed -n 's/^total_s=//p' | sort -n | sed -n 2p)
f="prom_export_load: fill"
e="prom_export_load: expose"
s="prom_export_load: stall phase="
echo
echo "prom_export_bench: $NAMES tabs x $CLIENTS clients, scraping $P (tabad on CPU $SERVER_CPU, load on CPU $LOAD_CPU)"
row "fill: events, seconds" "$(kv "$f" '' events), $(kv "$f" '' seconds) s; /names lists $(kv "$f" '' names_listed)"
row "server VmRSS empty / filled / after the scrapes (KB)" "$(kv 'prom_export_load: memory' when=empty vm_rss_kb) / $(kv 'prom_export_load: memory' when=filled vm_rss_kb) / $(kv 'prom_export_load: memory' when=after_openmetrics vm_rss_kb)"
row "server VmHWM filled / after the scrapes (KB)" "$(kv 'prom_export_load: memory' when=filled vm_hwm_kb) / $(kv 'prom_export_load: memory' when=after_openmetrics vm_hwm_kb)"
for fmt in text openmetrics; do
  row "scrape, $fmt: median (min-max) ms, idle server" "$(kv "$e" "format=$fmt" median_ms) ($(kv "$e" "format=$fmt" min_ms)-$(kv "$e" "format=$fmt" max_ms))"
  row "scrape, $fmt: route's own time (ms), server CPU ms" "$(kv "$e" "format=$fmt" server_ms), $(kv "$e" "format=$fmt" server_cpu_ms)"
  row "scrape, $fmt: bytes, sample lines" "$(mb "$(kv "$e" "format=$fmt" bytes)"), $(kv "$e" "format=$fmt" samples)"
done
row "scrape, text, curl: time to first byte / total (s)" "$ttfb / $curl_total"
for t in CounterGroup PercentileGroup Gauge TotalsCounter; do
  x="prom_export_load: expose_type"
  [ -n "$(kv "$x" "type=$t " tabs)" ] || continue
  row "only the $(kv "$x" "type=$t " tabs) $t tabs: route ms, CPU ms, samples" "$(kv "$x" "type=$t " server_ms), $(kv "$x" "type=$t " server_cpu_ms), $(kv "$x" "type=$t " samples)"
  row "  per 256 $t tabs: route ms, CPU ms" "$(kv "$x" "type=$t " server_ms_per_256_tabs), $(kv "$x" "type=$t " server_cpu_ms_per_256_tabs)"
done
for ph in A B; do
  k="phase=${ph}_median"
  row "ingest, phase $ph: events/s" "$(kv "$s" "$k" events_per_s)"
  row "ingest, phase $ph: post p50 / p99 / max (ms)" "$(kv "$s" "$k" p50_ms) / $(kv "$s" "$k" p99_ms) / $(kv "$s" "$k" max_ms)"
  row "ingest, phase $ph: server CPU-s per s" "$(kv "$s" "$k" server_cpu_per_s)"
done
k="phase=B_median"
row "phase B: scrape median / max (ms), under load" "$(kv "$s" "$k" scrape_median_ms) / $(kv "$s" "$k" scrape_max_ms) (share of B scraping $(kv "$s" "$k" scrape_busy))"
row "phase B: posts overlapping a scrape: p99 / max (ms)" "$(kv "$s" "$k" overlap_p99_ms) / $(kv "$s" "$k" overlap_max_ms)"
row "phase B: largest latency of a post clear of scrapes (ms)" "$(kv "$s" "$k" clear_max_ms)"
row "phase B: GET /healthz overlapping a scrape: p99 / max (ms)" "$(kv "$s" "$k" probe_overlap_p99_ms) / $(kv "$s" "$k" probe_overlap_max_ms)"
row "phase A: GET /healthz max (ms)" "$(kv "$s" "phase=A_median" probe_clear_max_ms)"
snaps() { grep "^${s}$1[0-9]" "$OUT" | tr ' ' '\n' | sed -n 's/^snapshots=//p' | awk '{ t += $1 } END { print t + 0 }'; }
row "store snapshots written during A / B phases (all rounds)" "$(snaps A) / $(snaps B)"
echo "prom_export_bench: machine at start: $MACHINE_START; at end: $MACHINE_END; $(uname -n), commit $(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
