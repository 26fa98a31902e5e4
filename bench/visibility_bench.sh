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
. "$(dirname "$0")/lib.sh"
bench_scratch visibility-bench
FEP=$BASE; AP=$((BASE + 1)); PP=$((BASE + 2)); UP=$((BASE + 3))
trap stop_all EXIT INT TERM
fe_config "$FEP" >"$DIR/fe.toml"
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
start_tabad 0 fe --config "$DIR/fe.toml"
start_tabad 0 edge --config "$DIR/edge.toml"
for p in $FEP $AP $PP; do wait_answers "$p"; done
for via in client statsd; do
  taskset -c 1 "$BUILD/bench/visibility_bench" --fe "http://127.0.0.1:$FEP" --agent "http://127.0.0.1:$AP" \
    --statsd "127.0.0.1:$UP" --via "$via" --samples "$SAMPLES" | tail -1
done
