#!/bin/sh
# agent_bench.sh: agent throughput, with each fsync policy.
#
# Starts an fe (embedded store, CPU 1) and, per policy, an agent pinned to
# CPU 0 that spools every post and forwards it to the fe; ingest_bench
# (CPU 1) posts agent-sized bodies to the agent and measures events per
# agent CPU-second (spooling + forwarding: the agent's whole job). After
# each policy it waits for the spool to drain and checks the fe got every
# acknowledged event.
# Usage: bench/agent_bench.sh [BUILD_DIR] [ingest_bench options...]
#   e.g. bench/agent_bench.sh build --runs 3 --duration 10
set -eu
BUILD=${1:-build}
[ $# -gt 0 ] && shift
DIR=$(mktemp -d /tmp/taba-agent-bench-XXXXXX)
BASE=$((30000 + $$ % 20000))
FEP=$BASE; AP=$((BASE + 1))
FE=""; AGENT=""
cleanup() {
  [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null || true
  [ -n "$FE" ] && kill "$FE" 2>/dev/null || true
  sleep 0.5
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

cat >"$DIR/fe.toml" <<EOF
[server]
data_dir = "$DIR/fe"
listen = "127.0.0.1:$FEP"
self_tabs_interval_s = 0
EOF
taskset -c 1 "$BUILD/tabad" --config "$DIR/fe.toml" >"$DIR/fe.log" 2>&1 &
FE=$!
n=0; until curl -sf "http://127.0.0.1:$FEP/healthz" >/dev/null; do n=$((n + 1)); [ $n -lt 150 ] || { echo "$0: http://127.0.0.1:$FEP/healthz did not answer within 15 s (port taken? see the logs)" >&2; exit 1; }; sleep 0.1; done

metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }
for policy in everysec always; do
  rm -rf "$DIR/agent"
  cat >"$DIR/agent.toml" <<EOF
[server]
roles = ["agent"]
data_dir = "$DIR/agent"
[agent]
listen = "127.0.0.1:$AP"
endpoints = ["127.0.0.1:$FEP"]
fsync = "$policy"
EOF
  taskset -c 0 "$BUILD/tabad" --config "$DIR/agent.toml" >"$DIR/agent-$policy.log" 2>&1 &
  AGENT=$!
  n=0; until curl -sf "http://127.0.0.1:$AP/healthz" >/dev/null; do n=$((n + 1)); [ $n -lt 150 ] || { echo "$0: http://127.0.0.1:$AP/healthz did not answer within 15 s (port taken? see the logs)" >&2; exit 1; }; sleep 0.1; done
  echo "agent_bench: fsync = $policy"
  "$BUILD/bench/ingest_bench" --server "http://127.0.0.1:$AP" --pid "$AGENT" --bench-cpu 1 "$@"
  while [ "$(metric "$AP" taba_agent_spool_events)" != "0" ]; do sleep 0.2; done
  acked=$(metric "$AP" taba_agent_events_received_total)
  fwd=$(metric "$AP" taba_agent_events_forwarded_total)
  echo "agent_bench: fsync = $policy: $acked events acknowledged, $fwd forwarded and acknowledged by the fe; spool empty"
  kill "$AGENT"
  wait "$AGENT" 2>/dev/null || true
  AGENT=""
done
