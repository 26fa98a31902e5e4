#!/bin/sh
# reshard_bench.sh: online re-sharding of the Redis store under load: the
# time and the Redis load to move 1/3 of the vbuckets of a cluster holding
# --states (client, name) states, and the ingest rate and query latency
# during the move against before it.
#
# Each run starts from nothing, on loopback:
#   - 3 redis-server masters shard1..shard3 without replicas (so no WAIT and
#     no failover) and 1 redis-sentinel monitoring all three, on CPU 1;
#   - tabad one process per role, as redis_bench.sh runs it: a be (CPU 1),
#     an fe (CPU 0) and a ctrl (CPU 0), one taba.toml whose
#     [[redis.shards]] are shard1 (vbuckets 0-511) and shard2 (512-1023);
#     shard3 is known only to the sentinel;
#   - bench/reshard_load (CPU 0) fills the cluster: one CounterGroup event
#     for every pair of --states / 1,000 clients x 1,000 names (1 client x
#     --states names below 1,000), then POST /flush to the ctrl and a check
#     that the cluster counts every event.
# Then reshard_load holds a steady load: RATE events/s offered to the fe
# (10 posts/s, 10 events per (client, name), walking over every pair), and
# NAME_QPS GET /tabs?name=X and CLIENT_QPS GET /tabs?name=X&client=C a
# second to the ctrl, X and C at random. After 3 s of warm-up it measures
# 20 s ("before"), then POST /reshard?to=shard3&vbuckets=0-340 to the ctrl
# (which drives the move), measures until GET /reshard shows the move done
# ("during"), and 5 s more ("after"). At each of these marks it reads each
# Redis's INFO: total_commands_processed (commands run inside Lua scripts
# included) and used_cpu_sys + used_cpu_user, per second of the phase, and
# commandstats (the most frequent commands during the move). Then the load
# stops, POST /flush, and the run checks that the 1d count of bench.name.*
# equals the events acknowledged (fill + steady; a post is resent with its
# Taba-Batch-Id after a 5xx until it is acknowledged) and that the shards
# hold exactly --states states of bench.name.*: a mismatch, a query that
# misses a name or a move that does not end "done" ends the script with
# status 1.
#
# It prints each run (the move driver's log lines, the table, the
# placement and states per shard after, warnings the tabad processes logged
# after the fill, reshard_load's first problem) and, with several runs, the
# medians. The move time is the move's own elapsed_s (GET /reshard,
# recent[0]); a post or query belongs to the phase in which it was sent.
#
# Usage: bench/reshard_bench.sh [BUILD_DIR] [--runs N] [--names-per-s N] [--states N]
#   BUILD_DIR       holds tabad and bench/reshard_load (default build)
#   --runs N        runs, each on a fresh cluster (default 3)
#   --names-per-s N [redis] reshard_names_per_s, the move's throttle
#                   (default 0: as fast as it goes)
#   --states N      (client, name) states (default 100000; a multiple of
#                   1,000, or below 1,000)
# The environment can change the steady load: RATE (events/s offered, default
# 20000), NAME_QPS (20) and CLIENT_QPS (5). One run takes about 35 s plus
# the move.
# Needs redis-server, redis-sentinel, redis-cli, curl and jq.
set -eu
BUILD=build
RUNS=3
NPS=0
STATES=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --runs|--names-per-s|--states)
      [ $# -ge 2 ] || { echo "$0: $1 needs a number" >&2; exit 2; }
      case "$1" in --runs) RUNS=$2 ;; --names-per-s) NPS=$2 ;; *) STATES=$2 ;; esac
      shift 2 ;;
    -h|--help) sed -n '2,/^# Needs/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "$0: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) BUILD=$1; shift ;;
  esac
done
for n in "$RUNS" "$NPS" "$STATES"; do
  case "$n" in ''|*[!0-9]*) echo "$0: --runs, --names-per-s and --states take a number, not \"$n\"" >&2; exit 2 ;; esac
done
if [ "$STATES" -lt 1000 ]; then NAMES=$STATES; else NAMES=1000; fi
if [ "$RUNS" -lt 1 ] || [ "$STATES" -lt 1 ] || [ $((STATES % NAMES)) -ne 0 ]; then
  echo "$0: --runs must be at least 1 and --states a multiple of 1,000 (or 1..999)" >&2
  exit 2
fi
CLIENTS=$((STATES / NAMES))
for t in redis-server redis-sentinel redis-cli curl jq; do
  command -v "$t" >/dev/null || { echo "$0: $t is missing" >&2; exit 1; }
done
for t in tabad bench/reshard_load; do
  [ -x "$BUILD/$t" ] || { echo "$0: $BUILD/$t is missing; build it (cmake --build $BUILD --target ${t#bench/})" >&2; exit 1; }
done
. "$(dirname "$0")/lib.sh"

RATE=${RATE:-20000}
NAME_QPS=${NAME_QPS:-20}
CLIENT_QPS=${CLIENT_QPS:-5}
WARMUP_S=3
BEFORE_S=20
AFTER_S=5
MOVE=0-340
SHARDS="shard1 shard2 shard3"
RESULTS=$(mktemp /tmp/taba-reshard-results-XXXXXX)
LOAD=""
trap 'stop_all; rm -f "$RESULTS"' EXIT INT TERM
now() { date +%s.%N; }

# mark LABEL: appends "LABEL TIME SHARD COMMANDS CPU_S" per Redis to
# $DIR/marks (INFO total_commands_processed, used_cpu_sys + used_cpu_user)
# and keeps each one's INFO commandstats in $DIR/LABEL.SHARD.cmds.
mark() {
  for s in $SHARDS; do
    eval "port=\$PORT_$s"
    redis-cli -p "$port" info commandstats | tr -d '\r' >"$DIR/$1.$s.cmds"
    printf '%s %s %s %s %s\n' "$1" "$(now)" "$s" "$(redis_info "$port" total_commands_processed)" \
      "$(redis-cli -p "$port" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { t += $2 } END { print t }')"
  done >>"$DIR/marks"
}

# flush PORT: POST /flush until it answers 200 (it gives up after 30 s
# itself; 3 tries).
flush() {
  for i in 1 2 3; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$1/flush")" = 200 ] && return 0
  done
  echo "$0: POST /flush did not succeed" >&2
  return 1
}

# fail MESSAGE: says why the run failed, shows the logs' tails, exits 1.
fail() {
  echo "reshard_bench: run $RUN: ERROR: $*" >&2
  for f in fe be ctrl; do echo "--- $f.log (tail)" >&2; tail -5 "$DIR/$f.log" >&2; done
  exit 1
}

# One run: prints its figures and appends its key=value line to $RESULTS.
run_once() {
  bench_scratch reshard-bench
  BASE=$((BASE + 10 * (RUN % 20)))
  PORT_shard1=$BASE; PORT_shard2=$((BASE + 1)); PORT_shard3=$((BASE + 2)); SP=$((BASE + 3))
  FEP=$((BASE + 4)); BEP=$((BASE + 5)); CP=$((BASE + 6))
  for s in $SHARDS; do eval "start_redis 1 $s \$PORT_$s"; done
  start_sentinel 1 "$SP" shard1="$PORT_shard1" shard2="$PORT_shard2" shard3="$PORT_shard3"
  redis_config "$SP" "shard1=0-511 shard2=512-1023" "reshard_names_per_s = $NPS" >"$DIR/taba.toml"
  start_tabad 1 be --config "$DIR/taba.toml" --role be --listen "127.0.0.1:$BEP"
  start_tabad 0 fe --config "$DIR/taba.toml" --role fe --listen "127.0.0.1:$FEP"
  start_tabad 0 ctrl --config "$DIR/taba.toml" --role ctrl --listen "127.0.0.1:$CP"
  for p in $BEP $FEP $CP; do wait_answers "$p" readyz; done

  taskset -c 0 "$BUILD/bench/reshard_load" --fill --fe "http://127.0.0.1:$FEP" --clients "$CLIENTS" \
    --names "$NAMES" >"$DIR/fill.out" || fail "fill: $(cat "$DIR/fill.out")"
  fill_acked=$(sed -n 's/.*fill acked_events=\([0-9]*\).*/\1/p' "$DIR/fill.out")
  fill_s=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' "$DIR/fill.out")
  flush "$CP" || fail "flush after the fill"
  counted=$(bench_events "$CP")
  [ "$counted" = "$STATES" ] || fail "after the fill the cluster counts ${counted:-no} events, not $STATES"

  for f in fe be ctrl; do eval "lines_$f=\$(wc -l <\"\$DIR/$f.log\")"; done
  taskset -c 0 "$BUILD/bench/reshard_load" --fe "http://127.0.0.1:$FEP" --query "http://127.0.0.1:$CP" \
    --clients "$CLIENTS" --names "$NAMES" --rate "$RATE" --name-qps "$NAME_QPS" --client-qps "$CLIENT_QPS" \
    >"$DIR/load.out" 2>"$DIR/load.err" &
  LOAD=$!
  PIDS="$PIDS $LOAD"
  sleep "$WARMUP_S"
  mark before
  kill -USR1 "$LOAD"
  sleep "$BEFORE_S"
  mark during
  kill -USR1 "$LOAD"
  code=$(curl -s -o "$DIR/post.json" -w '%{http_code}' -X POST \
    "http://127.0.0.1:$CP/reshard?to=shard3&vbuckets=$MOVE&format=json")
  [ "$code" = 202 ] || fail "POST /reshard answered $code: $(cat "$DIR/post.json")"
  id=$(jq -r '.move.id // .recent[0].id' "$DIR/post.json")
  t_post=$(now)
  while :; do
    j=$(curl -s "http://127.0.0.1:$CP/reshard?format=json") || j='{}'
    phase=$(printf '%s' "$j" | jq -r 'if .move == null then "" else .move.phase end' 2>/dev/null || echo "?")
    [ -n "$phase" ] || break
    awk -v a="$t_post" -v b="$(now)" 'BEGIN { exit !(b - a > 600) }' && fail "move $id still $phase after 600 s"
    sleep 0.2
  done
  mark after
  kill -USR1 "$LOAD"
  printf '%s' "$j" | jq -c '.recent[0]' >"$DIR/move.json"
  [ "$(jq -r .id "$DIR/move.json")" = "$id" ] || fail "move $id is not the newest recent move: $j"
  [ "$(jq -r .phase "$DIR/move.json")" = done ] || fail "move $id ended $(jq -c . "$DIR/move.json")"
  sleep "$AFTER_S"
  mark end
  kill -TERM "$LOAD"
  wait "$LOAD" || fail "reshard_load exited with an error: $(cat "$DIR/load.err")"
  LOAD=""

  flush "$CP" || fail "flush after the load"
  counted=$(bench_events "$CP")
  acked=$(sed -n 's/.*total acked_events=\([0-9]*\).*/\1/p' "$DIR/load.out")
  unacked=$(sed -n 's/.* unacked_events=\([0-9]*\).*/\1/p' "$DIR/load.out")
  states=""
  for s in $SHARDS; do eval "states=\"\$states $s=\$(redis_states \$PORT_$s 'bench.name.*')\""; done
  placement=$(curl -s "http://127.0.0.1:$CP/reshard?format=json" |
    jq -r '[.shards[] | .shard + "=" + ([.ranges[] | "\(.[0])-\(.[1])"] | join(","))] | join(" ")')

  # The run's figures as one key=value line.
  {
    printf 'run=%s fill_s=%s ' "$RUN" "$fill_s"
    jq -r '"move_s=\(.elapsed_s) names_moved=\(.names_moved) bytes_moved=\(.bytes_moved) "' "$DIR/move.json" | tr -d '\n'
    grep '^reshard_load: phase=' "$DIR/load.out" | awk '{
      phase = substr($2, 7)
      for (i = 3; i <= NF; i++) { split($i, kv, "="); printf "%s_%s=%s ", kv[1], phase, kv[2]; f[kv[1]] = kv[2] }
      printf "query_errors_%s=%d query_missing_%s=%d ", phase, f["name_errors"] + f["client_errors"],
        phase, f["name_missing"] + f["client_missing"] }'
    awk '{ t[$1] = $2; c[$1, $3] = $4; u[$1, $3] = $5; s[$3] = 1 }
      END {
        split("before during after end", m, " ")
        for (sh in s) for (i = 1; i < 4; i++) {
          d = t[m[i + 1]] - t[m[i]]
          printf "%s_cmds_per_s_%s=%.0f %s_cpu_per_s_%s=%.3f ", sh, m[i], (c[m[i + 1], sh] - c[m[i], sh]) / d,
            sh, m[i], (u[m[i + 1], sh] - u[m[i], sh]) / d
        }
      }' "$DIR/marks"
    printf 'acked=%s unacked=%s counted=%s\n' "$((fill_acked + acked))" "$unacked" "$counted"
  } >>"$RESULTS"

  echo "run $RUN: filled $STATES states ($CLIENTS clients x $NAMES names) in ${fill_s} s; move $id, the driver's log (s after its start):"
  grep -F "reshard $id: " "$DIR/ctrl.log" | awk -v id="$id" '{
    split(substr($1, 12, 12), t, ":"); s = t[1] * 3600 + t[2] * 60 + t[3]
    if (NR == 1) s0 = s
    line = $0; sub(".*reshard " id ": ", "", line)
    printf "    +%.3f %s\n", s - s0, line }'
  print_table "$(tail -1 "$RESULTS")"
  echo "  placement after: $placement; states per shard:$states"
  echo "  the most frequent Redis commands during the move, per second (INFO commandstats):"
  for s in $SHARDS; do
    printf '    %s:' "$s"
    awk -F'[:,=]' -v d="$(awk -v s="$s" '$3 == s { t[$1] = $2 } END { print t["after"] - t["during"] }' "$DIR/marks")" '
      /^cmdstat_/ { if (FNR == NR) c0[$1] = $3; else c[$1] = $3 - c0[$1] }
      END { for (k in c) if (c[k] > 0) printf "%d %s\n", c[k] / d, substr(k, 9) }' \
      "$DIR/during.$s.cmds" "$DIR/after.$s.cmds" | sort -rn | head -6 | awk '{ printf " %s %s", $2, $1 }'
    echo
  done
  for f in fe be ctrl; do
    eval "from=\$((lines_$f + 1))"
    tail -n "+$from" "$DIR/$f.log" | grep -i -E 'warn|error' >"$DIR/$f.warn" || true
    [ -s "$DIR/$f.warn" ] || continue
    echo "  $f.log: $(wc -l <"$DIR/$f.warn") warning/error lines after the fill, the first:"
    head -3 "$DIR/$f.warn" | sed 's/^/    /'
  done
  if [ -s "$DIR/load.err" ]; then sed 's/^/  /' "$DIR/load.err"; fi

  # Everything acknowledged is counted once; every state is on one shard.
  total=$((fill_acked + acked))
  if [ "$unacked" = 0 ]; then
    [ "$counted" = "$total" ] || fail "the cluster counts ${counted:-no} events; $total were acknowledged"
  else
    [ "$counted" -ge "$total" ] && [ "$counted" -le $((total + unacked)) ] ||
      fail "the cluster counts ${counted:-no} events; $total were acknowledged and $unacked were not"
  fi
  missing=$(grep -o 'name_missing=[0-9]*\|client_missing=[0-9]*' "$DIR/load.out" | awk -F= '{ n += $2 } END { print n + 0 }')
  [ "$missing" = 0 ] || fail "$missing queries answered 200 without the name they asked for"
  sum=$(echo "$states" | tr ' ' '\n' | awk -F= 'NF == 2 { n += $2 } END { print n }')
  [ "$sum" = "$STATES" ] || fail "the shards hold $sum states, not $STATES:$states"
  [ "$unacked" = 0 ] && never="" || never=" (+ $unacked never acknowledged)"
  echo "  check: $counted events counted = $total acknowledged$never; $sum states on the shards = $STATES"
  stop_all
  PIDS=""
}

# print_table "KEY=VALUE ...": the figures of a run (or the medians).
print_table() {
  echo "$1" | tr ' ' '\n' | awk -F= -v shards="$SHARDS" '
    NF == 2 { v[$1] = $2 }
    function row(label, key, fmt,    p, line) {
      line = sprintf("  %-34s", label)
      for (p = 1; p <= 3; p++) line = line sprintf("%12s", (key "_" ph[p]) in v ? sprintf(fmt, v[key "_" ph[p]]) : "-")
      print line
    }
    END {
      split("before during after", ph, " ")
      printf "  move: %.1f s, %d names moved, %.1f MiB moved\n", v["move_s"], v["names_moved"], v["bytes_moved"] / 1048576
      printf "  %-34s%12s%12s%12s\n", "", "before", "during", "after"
      row("phase length s", "seconds", "%.1f")
      row("ingest events/s (acknowledged)", "events_per_s", "%.0f")
      row("post latency p50 ms", "post_p50_ms", "%.1f")
      row("post latency p99 ms", "post_p99_ms", "%.1f")
      row("post latency max ms", "post_max_ms", "%.1f")
      row("post resends (5xx/errors)", "resends", "%d")
      row("/tabs?name=X queries", "name_n", "%d")
      row("/tabs?name=X p50 ms", "name_p50_ms", "%.2f")
      row("/tabs?name=X p99 ms", "name_p99_ms", "%.2f")
      row("/tabs?name=X max ms", "name_max_ms", "%.2f")
      row("/tabs?name=X&client=C p50 ms", "client_p50_ms", "%.2f")
      row("/tabs?name=X&client=C p99 ms", "client_p99_ms", "%.2f")
      row("queries not answered 200", "query_errors", "%d")
      row("200 answers without the name", "query_missing", "%d")
      n = split(shards, s, " ")
      for (i = 1; i <= n; i++) {
        row(s[i] " redis commands/s", s[i] "_cmds_per_s", "%.0f")
        row(s[i] " redis CPU s/s", s[i] "_cpu_per_s", "%.3f")
      }
    }'
}

echo "reshard_bench: 3 redis-server masters (shard1..3, no replicas: no WAIT, no failover) + 1 redis-sentinel on CPU 1;"
echo "reshard_bench: tabad one process per role as redis_bench.sh: be (CPU 1), fe (CPU 0), ctrl (CPU 0: queries, drives the move);"
echo "reshard_bench: [[redis.shards]] shard1 0-511, shard2 512-1023; move vbuckets $MOVE shard1 -> shard3; reshard_names_per_s = $NPS"
echo "reshard_bench: $STATES states ($CLIENTS clients x $NAMES CounterGroup names); load $RATE events/s offered to the fe," \
  "$NAME_QPS /tabs?name=X/s + $CLIENT_QPS /tabs?name=X&client=C/s to the ctrl; $RUNS run(s)"
RUN=1
while [ "$RUN" -le "$RUNS" ]; do
  run_once
  RUN=$((RUN + 1))
done
if [ "$RUNS" -gt 1 ]; then
  echo "medians of $RUNS runs:"
  print_table "$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1], NR] = kv[2]; k[kv[1]] = 1 } }
    END {
      for (key in k) {
        n = 0
        for (r = 1; r <= NR; r++) if ((key, r) in v) a[++n] = v[key, r] + 0
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        printf "%s=%s ", key, n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
    }' "$RESULTS")"
fi
