#!/bin/sh
# redis_bench.sh: ingest in Redis mode on one machine.
#
# Starts a redis-server and a redis-sentinel (one shard) and a be, all pinned
# to CPU 1; then ingest_bench starts an fe pinned to CPU 0 and posts
# agent-sized bodies from CPU 1 (any ingest_bench options pass through,
# e.g. --runs 3 --duration 10). Afterwards it waits for the be to drain the
# stream and prints:
#   - fe events per CPU-second (ingest_bench's table: the fe is its tabad),
#   - be deltas applied per second (drain rate) and its CPU-seconds,
#   - Redis commands per 1,000 events (INFO stats, whole run),
#   - how many deltas Redis saw per 1,000 events (pre-aggregation).
# With --via-agent the posts go to an agent (CPU 0) that folds them into
# delta batches and forwards them to the fe (CPU 0), as users run it; the
# script then also prints the fe's events per CPU-second (agent-forwarded).
# Usage: bench/redis_bench.sh [BUILD_DIR] [--via-agent] [ingest_bench options...]
set -eu
BUILD=${1:-build}
[ $# -gt 0 ] && shift
VIA_AGENT=0
if [ "${1:-}" = "--via-agent" ]; then
  VIA_AGENT=1
  shift
fi
. "$(dirname "$0")/lib.sh"
DIR=$(mktemp -d /tmp/taba-redis-bench-XXXXXX)
RP=$((20000 + $$ % 20000))
SP=$((RP + 1))
BEP=$((RP + 2))
FEP=$((RP + 3))
AP=$((RP + 4))
BE=""
FE=""
AGENT=""
cleanup() {
  for p in $BE $FE $AGENT $PIDS; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

start_redis 1 redis "$RP"
start_sentinel 1 "$SP" s1="$RP"
redis_config "$SP" "s1=0-1023" "max_stream_entries = 1000000000" >"$DIR/taba.toml"
taskset -c 1 "$BUILD/tabad" --config "$DIR/taba.toml" --role be --listen "127.0.0.1:$BEP" >"$DIR/be.log" 2>&1 &
BE=$!
wait_answers "$BEP" readyz

cmds() { redis_info "$RP" total_commands_processed; }
be_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$BE/stat"; }
if [ $VIA_AGENT = 1 ]; then
  taskset -c 0 "$BUILD/tabad" --config "$DIR/taba.toml" --role fe --listen "127.0.0.1:$FEP" >"$DIR/fe.log" 2>&1 &
  FE=$!
  printf '[server]\nroles = ["agent"]\ndata_dir = "%s/agent"\n[agent]\nlisten = "127.0.0.1:%s"\nendpoints = ["127.0.0.1:%s"]\n' \
    "$DIR" "$AP" "$FEP" >"$DIR/agent.toml"
  taskset -c 0 "$BUILD/tabad" --config "$DIR/agent.toml" >"$DIR/agent.log" 2>&1 &
  AGENT=$!
  wait_answers "$FEP" readyz
  wait_answers "$AP" readyz
fi
c0=$(cmds)
be0=$(be_cpu)
t0=$(date +%s.%N)
if [ $VIA_AGENT = 1 ]; then
  fe0=$(cpu_s "$FE")
  "$BUILD/bench/ingest_bench" --server "http://127.0.0.1:$AP" --pid "$AGENT" --bench-cpu 1 "$@"
  until curl -s "http://127.0.0.1:$AP/metrics" | grep -q '^taba_agent_spool_events 0$'; do sleep 0.1; done
else
  "$BUILD/bench/ingest_bench" --server-arg=--config --server-arg="$DIR/taba.toml" \
    --server-arg=--role --server-arg=fe "$@"
fi
t1=$(date +%s.%N)
while [ "$(redis-cli -p "$RP" xlen taba:stream)" != "0" ]; do sleep 0.1; done
t2=$(date +%s.%N)
c1=$(cmds)
be1=$(be_cpu)
events=$(bench_events "$BEP")
deltas=$(redis_states "$RP")
awk -v c0="$c0" -v c1="$c1" -v ev="$events" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v b0="$be0" -v b1="$be1" \
  -v states="$deltas" 'BEGIN {
  printf "redis_bench: %d events posted; the be drained the stream %.1f s after the load ended\n", ev, t2 - t1;
  printf "redis_bench: redis commands %d = %.1f per 1,000 events\n", c1 - c0, (c1 - c0) * 1000 / ev;
  printf "redis_bench: be CPU %.1f s for %d events = %.0f events per be CPU-second\n", b1 - b0, ev, ev / (b1 - b0);
  printf "redis_bench: %d (client, name) states stored\n", states;
}'
if [ $VIA_AGENT = 1 ]; then
  awk -v a="$fe0" -v b="$(cpu_s "$FE")" -v ev="$events" 'BEGIN {
    printf "redis_bench: fe CPU %.2f s for %d agent-forwarded events = %.0f events per fe CPU-second\n", b - a, ev, ev / (b - a) }'
fi
echo "redis_bench: be log tail:"
tail -3 "$DIR/be.log"
