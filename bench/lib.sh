# lib.sh: the shell pieces the benchmark scripts share; sourced, not run:
#   . "$(dirname "$0")/lib.sh"
# A scratch directory with ports from a per-process base, the trap that
# stops the started servers and removes it, the configs of an fe, an agent
# and a client-proxy, starting tabad pinned to a CPU, and waiting for a
# server to answer; for Redis mode, starting redis-server and redis-sentinel,
# the [redis] config, and reading INFO, the stored states and the events a
# cluster counted. The scripts set BUILD (the build directory) first.

# bench_scratch NAME: DIR, a fresh /tmp/taba-NAME-XXXXXX, and BASE, the
# first of the loopback ports this run uses (20000..31999, by process id:
# below the kernel's ephemeral ports, 32768 and up by default, so that no
# outgoing connection of another program holds one; a script may use a few
# hundred from BASE on).
bench_scratch() {
  DIR=$(mktemp -d "/tmp/taba-$1-XXXXXX")
  BASE=$((20000 + $$ % 12000))
}

# The servers started so far (start_tabad adds to it); stop_all, the
# scripts' EXIT/INT/TERM trap, stops them and removes DIR.
PIDS=""
stop_all() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$DIR"
}

# fe_config PORT [LINE...]: an fe with the embedded store in $DIR/fe,
# listening on PORT; each LINE is one more line of [server].
fe_config() {
  cat <<EOT
[server]
data_dir = "$DIR/fe"
listen = "127.0.0.1:$1"
EOT
  shift
  for line in "$@"; do echo "$line"; done
}

# agent_config PORT FE_PORT [LINE...]: an agent spooling in $DIR/agent,
# listening on PORT and forwarding to the fe on FE_PORT; each LINE is one
# more line of [agent].
agent_config() {
  cat <<EOT
[server]
roles = ["agent"]
data_dir = "$DIR/agent"
[agent]
listen = "127.0.0.1:$1"
endpoints = ["127.0.0.1:$2"]
EOT
  shift 2
  for line in "$@"; do echo "$line"; done
}

# proxy_config PORT UDP_PORT AGENT_PORT RCVBUF_BYTES: a client-proxy
# listening on PORT, taking StatsD on UDP_PORT and forwarding to the agent
# on AGENT_PORT (or an fe: it takes the same posts), asking the kernel for a
# receive buffer of RCVBUF_BYTES.
proxy_config() {
  cat <<EOT
[server]
roles = ["client-proxy"]
data_dir = "$DIR/proxy"
[client_proxy]
listen = "127.0.0.1:$1"
statsd_udp = "127.0.0.1:$2"
agent = "127.0.0.1:$3"
udp_recv_buffer_bytes = $4
EOT
}

# start_tabad CPU LOG ARGS...: $BUILD/tabad ARGS in the background, pinned
# to CPU, its output in $DIR/LOG.log; its pid in TABAD_PID and added to PIDS.
start_tabad() {
  cpu=$1
  log=$2
  shift 2
  taskset -c "$cpu" "$BUILD/tabad" "$@" >"$DIR/$log.log" 2>&1 &
  TABAD_PID=$!
  PIDS="$PIDS $TABAD_PID"
}

# start_statsd_chain RCVBUF_BYTES [CPUS]: the three tabad processes of the
# StatsD path as a host runs them: an fe (roles fe,be, the embedded store)
# on FEP and an agent on AP, both pinned to CPUS (a taskset list; default
# 1), and a client-proxy on PP (StatsD on UDP port UP, asking for a receive
# buffer of RCVBUF_BYTES, forwarding to the agent) pinned to CPU 0; each
# with its config and log in DIR (fe, agent, proxy); their pids in FE,
# AGENT and PROXY.
start_statsd_chain() {
  fe_config "$FEP" "self_tabs_interval_s = 0" >"$DIR/fe.toml"
  agent_config "$AP" "$FEP" >"$DIR/agent.toml"
  proxy_config "$PP" "$UP" "$AP" "$1" >"$DIR/proxy.toml"
  start_tabad "${2:-1}" fe --config "$DIR/fe.toml"
  FE=$TABAD_PID
  start_tabad "${2:-1}" agent --config "$DIR/agent.toml"
  AGENT=$TABAD_PID
  start_tabad 0 proxy --config "$DIR/proxy.toml"
  PROXY=$TABAD_PID
}

# start_statsd_direct RCVBUF_BYTES [CPUS]: as start_statsd_chain without
# the agent: the client-proxy (CPU 0) posts its bodies straight to the fe
# (CPUS, default 1); pids in FE and PROXY.
start_statsd_direct() {
  fe_config "$FEP" "self_tabs_interval_s = 0" >"$DIR/fe.toml"
  proxy_config "$PP" "$UP" "$FEP" "$1" >"$DIR/proxy.toml"
  start_tabad "${2:-1}" fe --config "$DIR/fe.toml"
  FE=$TABAD_PID
  start_tabad 0 proxy --config "$DIR/proxy.toml"
  PROXY=$TABAD_PID
}

# start_redis CPU NAME PORT: a redis-server without persistence on loopback
# PORT, pinned to CPU, its log in $DIR/NAME.log; its pid added to PIDS.
# Returns once it answers PING (the script exits after 15 s without).
start_redis() {
  taskset -c "$1" redis-server --port "$3" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$DIR" --logfile "$DIR/$2.log" >/dev/null 2>&1 &
  PIDS="$PIDS $!"
  wait_redis "$3" "$DIR/$2.log"
}

# start_sentinel CPU PORT SHARD=REDIS_PORT...: a redis-sentinel on loopback
# PORT, pinned to CPU, monitoring each SHARD's master on 127.0.0.1:REDIS_PORT
# (quorum 1), its config and log in $DIR (sentinel.conf, sentinel.log); its
# pid added to PIDS. Returns once it answers PING.
start_sentinel() {
  cpu=$1
  port=$2
  shift 2
  {
    printf 'port %s\nbind 127.0.0.1\n' "$port"
    for s in "$@"; do printf 'sentinel monitor %s 127.0.0.1 %s 1\n' "${s%%=*}" "${s#*=}"; done
  } >"$DIR/sentinel.conf"
  taskset -c "$cpu" redis-sentinel "$DIR/sentinel.conf" --logfile "$DIR/sentinel.log" >/dev/null 2>&1 &
  PIDS="$PIDS $!"
  wait_redis "$port" "$DIR/sentinel.log"
}

# wait_redis PORT LOG: until the Redis (or Sentinel) on PORT answers PING;
# after 15 s without, the script shows the end of LOG and exits.
wait_redis() {
  n=0
  until redis-cli -p "$1" ping >/dev/null 2>&1; do
    n=$((n + 1))
    if [ $n -ge 150 ]; then
      echo "$0: redis on port $1 did not answer within 15 s; $2 ends:" >&2
      tail -3 "$2" >&2
      exit 1
    fi
    sleep 0.1
  done
}

# redis_config SENTINEL_PORT "SHARD=FIRST-LAST ..." [LINE...]: a taba.toml
# for Redis mode: the sentinel on loopback SENTINEL_PORT, each LINE one more
# line of [redis], then one [[redis.shards]] per SHARD=FIRST-LAST.
redis_config() {
  printf '[redis]\nsentinels = ["127.0.0.1:%s"]\n' "$1"
  shards=$2
  shift 2
  for line in "$@"; do echo "$line"; done
  for s in $shards; do
    r=${s#*=}
    printf '[[redis.shards]]\nname = "%s"\nvbuckets = [%s, %s]\n' "${s%%=*}" "${r%-*}" "${r#*-}"
  done
}

# redis_info PORT FIELD: FIELD of the INFO of the Redis on PORT
# (total_commands_processed, used_cpu_sys, ...).
redis_info() {
  redis-cli -p "$1" info | tr -d '\r' | sed -n "s/^$2://p"
}

# redis_states PORT [NAMES]: the (client, name) states the Redis on PORT
# holds (the fields of every taba:s:<name> hash) of the names matching the
# glob NAMES (default all).
redis_states() {
  redis-cli -p "$1" eval "local n = 0 for _, k in ipairs(redis.call('keys', KEYS[1])) do n = n + redis.call('hlen', k) end return n" 1 "taba:s:${2:-*}"
}

# bench_events PORT: the events of the benchmarks' names (bench.name.*) in
# the 1d window, as the tabad on PORT reduces them (/supertabs; the server's
# own taba_* tabs are of other types).
bench_events() {
  curl -s -G -H 'Accept: application/json' --data-urlencode 'name=bench\.name\..*' --data 're=1' \
    "http://127.0.0.1:$1/supertabs" |
    sed -n 's/.*"1d": {"count": \([0-9]*\).*/\1/p'
}

# wait_answers PORT [PATH]: until http://127.0.0.1:PORT/PATH (default
# healthz) answers 200; the script exits after 15 s without.
wait_answers() {
  url="http://127.0.0.1:$1/${2:-healthz}"
  n=0
  until curl -sf "$url" >/dev/null; do
    n=$((n + 1))
    [ $n -lt 150 ] || { echo "$0: $url did not answer within 15 s (port taken? see the logs)" >&2; exit 1; }
    sleep 0.1
  done
}

# cpu_s PID...: the CPU-seconds (utime + stime, all threads) the processes
# have used so far, from /proc/PID/stat.
cpu_s() {
  tck=$(getconf CLK_TCK)
  for p in "$@"; do cat "/proc/$p/stat"; done |
    awk -v tck="$tck" '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%.3f\n", t / tck }'
}
