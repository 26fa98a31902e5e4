#!/bin/sh
# visibility_bench.sh: end-to-end visibility latency at default settings.
#
# Starts an fe (embedded store), an agent and a client-proxy with their
# default flush settings (client 1 s, proxy 200 ms, agent 200 ms) on free
# ports, then runs visibility_bench through the C++ client and through
# StatsD: the time from recording an event to seeing it in /tabs.
# Usage: bench/visibility_bench.sh [BUILD_DIR] [SAMPLES]
set -eu
BUILD=${1:-build}
SAMPLES=${2:-40}
DIR=$(mktemp -d /tmp/taba-visibility-bench-XXXXXX)
BASE=$((30000 + $$ % 20000))
FEP=$BASE; AP=$((BASE + 1)); PP=$((BASE + 2)); UP=$((BASE + 3))
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM
cat >"$DIR/fe.toml" <<EOF
[server]
data_dir = "$DIR/fe"
listen = "127.0.0.1:$FEP"
EOF
cat >"$DIR/edge.toml" <<EOF
[server]
roles = ["client-proxy", "agent"]
data_dir = "$DIR/agent"
[agent]
listen = "127.0.0.1:$AP"
endpoints = ["127.0.0.1:$FEP"]
[client_proxy]
listen = "127.0.0.1:$PP"
statsd_udp = "127.0.0.1:$UP"
agent = "127.0.0.1:$AP"
EOF
taskset -c 0 "$BUILD/tabad" --config "$DIR/fe.toml" >"$DIR/fe.log" 2>&1 &
PIDS="$PIDS $!"
taskset -c 0 "$BUILD/tabad" --config "$DIR/edge.toml" >"$DIR/edge.log" 2>&1 &
PIDS="$PIDS $!"
for p in $FEP $AP $PP; do
  n=0; until curl -sf "http://127.0.0.1:$p/healthz" >/dev/null; do n=$((n + 1)); [ $n -lt 150 ] || { echo "$0: http://127.0.0.1:$p/healthz did not answer within 15 s (port taken? see the logs)" >&2; exit 1; }; sleep 0.1; done
done
for via in client statsd; do
  taskset -c 1 "$BUILD/bench/visibility_bench" --fe "http://127.0.0.1:$FEP" --agent "http://127.0.0.1:$AP" \
    --statsd "127.0.0.1:$UP" --via "$via" --samples "$SAMPLES" | tail -1
done
