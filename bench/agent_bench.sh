#!/bin/sh
# agent_bench.sh: agent throughput, with each fsync policy.
#
# Starts an fe (embedded store, CPU 1) and, per policy, an agent pinned to
# CPU 0 that spools every post and forwards it to the fe; ingest_bench
# (CPU 1) posts agent-sized bodies to the agent and measures events per
# agent CPU-second (spooling + forwarding: the agent's whole job). After
# each policy it waits for the spool to drain, checks the fe got every
# acknowledged event, and prints the fe's CPU-seconds over the run and the
# drain and the events it represents per fe CPU-second: what an fe pays for
# agent-forwarded traffic (delta batches, or v1 from an older agent).
# Usage: bench/agent_bench.sh [BUILD_DIR] [ingest_bench options...]
#   e.g. bench/agent_bench.sh build --runs 3 --duration 10
set -eu
BUILD=${1:-build}
[ $# -gt 0 ] && shift
. "$(dirname "$0")/lib.sh"
bench_scratch agent-bench
FEP=$BASE; AP=$((BASE + 1))
trap stop_all EXIT INT TERM

fe_config "$FEP" "self_tabs_interval_s = 0" >"$DIR/fe.toml"
start_tabad 1 fe --config "$DIR/fe.toml"
FE=$TABAD_PID
wait_answers "$FEP"

metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }
for policy in everysec always; do
  rm -rf "$DIR/agent"
  agent_config "$AP" "$FEP" "fsync = \"$policy\"" >"$DIR/agent.toml"
  start_tabad 0 "agent-$policy" --config "$DIR/agent.toml"
  AGENT=$TABAD_PID
  wait_answers "$AP"
  echo "agent_bench: fsync = $policy"
  fe_cpu0=$(cpu_s "$FE")
  fe_events0=$(metric "$FEP" taba_store_events_applied_total)
  "$BUILD/bench/ingest_bench" --server "http://127.0.0.1:$AP" --pid "$AGENT" --bench-cpu 1 "$@"
  while [ "$(metric "$AP" taba_agent_spool_events)" != "0" ]; do sleep 0.2; done
  acked=$(metric "$AP" taba_agent_events_received_total)
  fwd=$(metric "$AP" taba_agent_events_forwarded_total)
  echo "agent_bench: fsync = $policy: $acked events acknowledged, $fwd forwarded and acknowledged by the fe; spool empty"
  fe_cpu=$(awk -v a="$fe_cpu0" -v b="$(cpu_s "$FE")" 'BEGIN { printf "%.3f", b - a }')
  fe_events=$(( $(metric "$FEP" taba_store_events_applied_total) - fe_events0 ))
  echo "agent_bench: fsync = $policy: fe: $fe_events events applied for $fe_cpu CPU-s:" \
    "$(awk -v e="$fe_events" -v c="$fe_cpu" 'BEGIN { printf "%.0f", c > 0 ? e / c : 0 }') events per fe CPU-second"
  kill "$AGENT"
  wait "$AGENT" 2>/dev/null || true
  PIDS=" $FE"
done
