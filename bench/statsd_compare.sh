#!/bin/sh
# statsd_compare.sh: Etsy StatsD (the Node.js daemon) vs tabad's client-proxy,
# side by side on the same machine and the same UDP workload.
#
# Both daemons listen on 127.0.0.1 and are pinned to CPU 0. tabad's proxy
# forwards to an agent and an fe pinned to CPU 1 (as in proxy_bench.sh);
# Etsy StatsD runs with no backend and a 1 h flushInterval, so nothing is
# flushed or reset during a run. statsd_bench (CPU 1) offers the same
# pre-built line mix (counters, sampled counters, timers with DogStatsD tags,
# histograms, gauges, sets; 20 lines per datagram) to each daemon in turn, at
# each rate for DURATION seconds, RUNS times, alternating the daemons run by
# run so both see the same background load. At the end it prints one table of
# medians per (daemon, rate): lines offered, lines received (% of offered),
# the daemon's CPU-seconds per million lines received, lines per CPU-second.
#
# "Received" is each daemon's own count of lines it took off the socket:
#   tabad:  taba_proxy_lines_total + taba_proxy_bad_lines_total (/metrics)
#   Etsy:   the internal counter statsd.metrics_received (management port,
#           `counters` command), incremented once per non-empty line before
#           the line is parsed (stats.js handlePacket), so bad lines count too.
# statsd_bench reads the count (once it is stable: see stable.sh below)
# before and after each run and takes the difference. CPU is utime + stime
# of the daemon's whole process (/proc/PID/stat, all threads) from the start
# of sending to the last count (the 1 s settle and any backlog included).
# --short BUILD_DIR: defaults RUNS=1 DURATION=2 (the other arguments as usual).
#
# Usage: bench/statsd_compare.sh [--short] [BUILD_DIR] [RUNS] [DURATION] [RATES...]
#   e.g. bench/statsd_compare.sh build 3 5 100000 300000 1000000   (defaults)
#        bench/statsd_compare.sh --short build   (quick check: RUNS=1 DURATION=2)
# Environment:
#   UDP_RCVBUF_BYTES   receive buffer asked by tabad's proxy (default 33554432)
#   ETSY_RCVBUF_BYTES  if set, Etsy StatsD's UDP socket gets this receive
#                      buffer through a node --require preload (Etsy StatsD
#                      has no option for it); needs net.core.rmem_max at least
#                      this big, which the script raises (and restores) only
#                      when run as root. Unset (default): Etsy StatsD runs
#                      stock, with the kernel default net.core.rmem_default.
#
# Needs node and npm (Debian: apt-get install nodejs npm). Etsy StatsD is
# installed once with `npm install --prefix BUILD_DIR/etsy-statsd statsd`.
set -eu
. "$(dirname "$0")/lib.sh"
SHORT=0
if [ "${1:-}" = "--short" ]; then
  SHORT=1
  shift
fi
BUILD=${1:-build}
if [ $SHORT = 1 ]; then RUNS=${2:-1}; DURATION=${3:-2}; else RUNS=${2:-3}; DURATION=${3:-5}; fi
[ $# -gt 3 ] && shift 3 || set --
RATES=${*:-100000 300000 1000000}
UDP_RCVBUF_BYTES=${UDP_RCVBUF_BYTES:-33554432}
ETSY_RCVBUF_BYTES=${ETSY_RCVBUF_BYTES:-}

say() { echo "statsd_compare: $*"; }
die() { echo "statsd_compare: $*" >&2; exit 1; }

for tool in node npm; do
  command -v $tool >/dev/null 2>&1 ||
    die "$tool not found: Etsy StatsD needs Node.js and npm; install them with 'apt-get install nodejs npm' (Debian/Ubuntu) and rerun"
done
for tool in taskset curl; do
  command -v $tool >/dev/null 2>&1 || die "$tool not found"
done
[ -x "$BUILD/tabad" ] || die "$BUILD/tabad not found: build it first (ninja -C $BUILD tabad statsd_bench)"
[ -x "$BUILD/bench/statsd_bench" ] || die "$BUILD/bench/statsd_bench not found: build it first (ninja -C $BUILD statsd_bench)"
BUILD=$(cd "$BUILD" && pwd)

# Etsy StatsD, installed once per build directory.
ETSY_PREFIX=$BUILD/etsy-statsd
ETSY=$ETSY_PREFIX/node_modules/statsd
if [ ! -f "$ETSY/stats.js" ]; then
  say "installing Etsy StatsD: npm install --prefix $ETSY_PREFIX statsd"
  mkdir -p "$ETSY_PREFIX"
  timeout 600 npm install --prefix "$ETSY_PREFIX" --no-audit --no-fund statsd >"$ETSY_PREFIX/npm-install.log" 2>&1 ||
    die "npm install failed; see $ETSY_PREFIX/npm-install.log"
  [ -f "$ETSY/stats.js" ] || die "npm install did not produce $ETSY/stats.js"
fi
ETSY_VERSION=$(node -p "require('$ETSY/package.json').version")

DIR=$(mktemp -d /tmp/taba-statsd-compare-XXXXXX)
PIDS=""
RMEM_MAX_RESTORE=""
cleanup() {
  trap - EXIT INT TERM
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "$RMEM_MAX_RESTORE" ]; then
    sysctl -q -w net.core.rmem_max="$RMEM_MAX_RESTORE" >/dev/null 2>&1 ||
      echo "$RMEM_MAX_RESTORE" >/proc/sys/net/core/rmem_max 2>/dev/null || true
    say "restored net.core.rmem_max to $RMEM_MAX_RESTORE"
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free loopback ports (TCP and UDP), starting from a per-process base.
NEXT_PORT=$((30000 + $$ % 20000))
in_use() {
  command -v ss >/dev/null 2>&1 || return 1
  [ -n "$(ss -Htuan "( sport = :$1 )" 2>/dev/null)" ]
}
free_port() {
  while in_use $NEXT_PORT; do NEXT_PORT=$((NEXT_PORT + 1)); done
  FREE_PORT=$NEXT_PORT
  NEXT_PORT=$((NEXT_PORT + 1))
}
free_port; FEP=$FREE_PORT
free_port; AP=$FREE_PORT
free_port; PP=$FREE_PORT
free_port; UP=$FREE_PORT
free_port; EUP=$FREE_PORT
free_port; EMP=$FREE_PORT

# Waits until a command succeeds, at most $1 seconds.
wait_for() {
  limit=$1
  shift
  t=0
  until "$@" >/dev/null 2>&1; do
    t=$((t + 1))
    [ $t -le $((limit * 10)) ] || return 1
    sleep 0.1
  done
}

# ---- tabad: fe + agent on CPU 1, client-proxy on CPU 0 (as proxy_bench.sh).
start_statsd_chain "$UDP_RCVBUF_BYTES"
for p in $FEP $AP $PP; do
  wait_for 30 curl -sf "http://127.0.0.1:$p/healthz" || {
    tail -5 "$DIR"/*.log >&2
    die "tabad on port $p did not become healthy in 30 s"
  }
done

# ---- Etsy StatsD on CPU 0, loopback only, no backend, no flush during runs.
# Management-port client: `node etsy_mgmt.js PORT health|received|counts`.
cat >"$DIR/etsy_mgmt.js" <<'EOF'
const net = require('net');
const port = Number(process.argv[2]);
const what = process.argv[3] || 'received';
const timer = setTimeout(() => { process.stderr.write('etsy_mgmt: timeout\n'); process.exit(1); }, 5000);
const s = net.connect({ host: '127.0.0.1', port });
let buf = '';
s.setEncoding('ascii');
s.on('connect', () => s.write(what === 'health' ? 'health\n' : 'counters\n'));
s.on('error', (e) => { process.stderr.write('etsy_mgmt: ' + e.message + '\n'); process.exit(1); });
s.on('data', (d) => {
  buf += d;
  if (what === 'health') {
    if (!buf.includes('\n')) return;
    process.stdout.write(buf.trim() + '\n');
  } else {
    if (!buf.includes('\nEND')) return;
    const get = (name) => {
      const m = buf.match(new RegExp("'statsd\\." + name + "': (\\d+)"));
      if (!m) { process.stderr.write('etsy_mgmt: no statsd.' + name + '\n'); process.exit(1); }
      return m[1];
    };
    if (what === 'received') process.stdout.write(get('metrics_received') + '\n');
    else process.stdout.write('metrics_received=' + get('metrics_received') + ' packets_received=' +
                              get('packets_received') + ' bad_lines_seen=' + get('bad_lines_seen') + '\n');
  }
  clearTimeout(timer);
  s.destroy();
});
EOF
cat >"$DIR/etsy.js" <<EOF
{
  address: "127.0.0.1",
  port: $EUP,
  mgmt_address: "127.0.0.1",
  mgmt_port: $EMP,
  backends: [],
  flushInterval: 3600000,
  dumpMessages: false,
  debug: false,
  automaticConfigReload: false
}
EOF
ETSY_NODE_OPTS=""
ETSY_BUF_NOTE="stock: no receive-buffer option in Etsy StatsD, so the kernel default net.core.rmem_default = $(cat /proc/sys/net/core/rmem_default 2>/dev/null || echo '?') bytes"
if [ -n "$ETSY_RCVBUF_BYTES" ]; then
  # Etsy StatsD creates its socket with dgram.createSocket(type, cb) and has no
  # option for the buffer; a preload adds node's recvBufferSize option. That is
  # SO_RCVBUF, capped by net.core.rmem_max.
  cur=$(cat /proc/sys/net/core/rmem_max)
  if [ "$cur" -lt "$ETSY_RCVBUF_BYTES" ]; then
    if [ "$(id -u)" = 0 ]; then
      say "root: raising net.core.rmem_max from $cur to $ETSY_RCVBUF_BYTES for Etsy StatsD's buffer (restored at exit)"
      RMEM_MAX_RESTORE=$cur
      echo "$ETSY_RCVBUF_BYTES" >/proc/sys/net/core/rmem_max
    else
      say "not root: net.core.rmem_max is $cur, so Etsy StatsD's buffer is capped there"
    fi
  fi
  cat >"$DIR/etsy_rcvbuf.js" <<'EOF'
const dgram = require('dgram');
const want = Number(process.env.ETSY_RCVBUF_BYTES);
const create = dgram.createSocket;
dgram.createSocket = function (type, listener) {
  const opts = typeof type === 'object' ? Object.assign({}, type) : { type };
  opts.recvBufferSize = want;
  const s = create.call(this, opts, listener);
  s.on('listening', () => console.log('etsy_rcvbuf: SO_RCVBUF reads ' + s.getRecvBufferSize() + ' bytes'));
  return s;
};
EOF
  ETSY_NODE_OPTS="--require $DIR/etsy_rcvbuf.js"
fi
# shellcheck disable=SC2086
(cd "$ETSY" && ETSY_RCVBUF_BYTES=$ETSY_RCVBUF_BYTES exec taskset -c 0 node $ETSY_NODE_OPTS stats.js "$DIR/etsy.js") \
  >"$DIR/etsy.log" 2>&1 &
ETSY_PID=$!
PIDS="$PIDS $ETSY_PID"
wait_for 30 node "$DIR/etsy_mgmt.js" $EMP health || {
  tail -20 "$DIR/etsy.log" >&2
  die "Etsy StatsD did not answer on its management port in 30 s"
}
# The pid measured must be node itself (the subshell execs taskset, which
# execs node; Etsy StatsD renames its process title, so look at the binary).
case "$(readlink "/proc/$ETSY_PID/exe" 2>/dev/null)" in
  */node*) ;;
  *) die "pid $ETSY_PID runs $(readlink "/proc/$ETSY_PID/exe" 2>/dev/null), not node" ;;
esac
if [ -n "$ETSY_RCVBUF_BYTES" ]; then
  wait_for 5 grep -q etsy_rcvbuf "$DIR/etsy.log" || true
  ETSY_BUF_NOTE="$(grep -o 'SO_RCVBUF reads.*' "$DIR/etsy.log" || echo "asked $ETSY_RCVBUF_BYTES") (node recvBufferSize preload; Linux reads back twice the size set)"
fi

# The kernel's receive buffer of the socket bound to a UDP port (ss's skmem rb:
# what SO_RCVBUF reads back, twice the size asked for), or "?".
sock_rb() {
  ss -Huanm "( sport = :$1 )" 2>/dev/null | grep -o 'rb[0-9]*' | head -1 | sed 's/rb//' | grep . || echo '?'
}

say "Etsy StatsD $ETSY_VERSION (node $(node --version)), pid $ETSY_PID, CPU 0, udp 127.0.0.1:$EUP, mgmt 127.0.0.1:$EMP"
say "  receive buffer: $ETSY_BUF_NOTE; kernel rb $(sock_rb $EUP) bytes"
say "tabad client-proxy, pid $PROXY, CPU 0, udp 127.0.0.1:$UP; fe and agent on CPU 1"
say "  receive buffer: $(grep -o 'UDP receive buffer.*' "$DIR/proxy.log" || echo "$UDP_RCVBUF_BYTES bytes asked (SO_RCVBUFFORCE as root, else capped by net.core.rmem_max)"); kernel rb $(sock_rb $UP) bytes"
say "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
say "sender: statsd_bench on CPU 1; $RUNS run(s) x ${DURATION} s per daemon and rate; rates: $RATES"

# Received-line counts, read through statsd_bench --received-cmd before and
# after each run (statsd_bench prints the difference). stable.sh reads until
# two reads 0.2 s apart agree (at most ~10 s), so a backlog still draining
# from a receive buffer after the 1 s settle is counted in its own run and
# never in the next one. tabad: the same counters statsd_bench's --metrics
# reads (taba_proxy_lines_total + taba_proxy_bad_lines_total).
cat >"$DIR/stable.sh" <<'EOF'
prev=$("$@") || exit 1
i=0
while [ $i -lt 50 ]; do
  sleep 0.2
  cur=$("$@") || exit 1
  [ "$cur" = "$prev" ] && break
  prev=$cur
  i=$((i + 1))
done
echo "$prev"
EOF
cat >"$DIR/tabad_count.sh" <<EOF
curl -sf "http://127.0.0.1:$PP/metrics" |
  awk '/^taba_proxy_(bad_)?lines_total[ {]/ { s += \$NF; n++ } END { if (n == 0) exit 1; printf "%.0f\\n", s }'
EOF
bench_tabad() {
  "$BUILD/bench/statsd_bench" --target "127.0.0.1:$UP" --rate "$1" --duration "$DURATION" \
    --received-cmd "sh $DIR/stable.sh sh $DIR/tabad_count.sh" --pid "$PROXY" --bench-cpu 1
}
bench_etsy() {
  "$BUILD/bench/statsd_bench" --target "127.0.0.1:$EUP" --rate "$1" --duration "$DURATION" \
    --received-cmd "sh $DIR/stable.sh node $DIR/etsy_mgmt.js $EMP received" --pid "$ETSY_PID" --bench-cpu 1
}
sh "$DIR/tabad_count.sh" >/dev/null || die "cannot read taba_proxy_lines_total from http://127.0.0.1:$PP/metrics"

: >"$DIR/results.txt"
printf '%-12s %12s %12s %12s %8s %9s %14s %14s\n' "daemon" "rate" "sent" "received" "loss%" "cpu_s" "cpu_s/M lines" "lines/cpu_s"
for rate in $RATES; do
  i=0
  while [ $i -lt "$RUNS" ]; do
    for d in tabad etsy; do
      if bench_$d "$rate" >"$DIR/run.txt" 2>&1; then
        line=$(grep '^statsd_bench:' "$DIR/run.txt" || true)
      else
        line=""
      fi
      if [ -z "$line" ]; then
        say "$d at $rate lines/s: run failed:"
        cat "$DIR/run.txt" >&2
        continue
      fi
      # name rate sent received loss cpu_s cpu_per_m lines_per_cpu
      echo "$line" | sed 's/.*sent_lines=\([^ ]*\).*received_lines=\([^ ]*\) loss_pct=\([^ ]*\) receiver_cpu_s=\([^ ]*\) cpu_s_per_million_lines=\([^ ]*\) lines_per_cpu_s=\([^ ]*\).*/\1 \2 \3 \4 \5 \6/' |
        awk -v d="$d" -v r="$rate" '{ print d, r, $0 }' >>"$DIR/results.txt"
      tail -1 "$DIR/results.txt" | awk '{ printf "%-12s %12s %12s %12s %8.2f %9s %14s %14s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
    done
    i=$((i + 1))
  done
done

say "after the runs (load average $(cut -d' ' -f1-3 /proc/loadavg)):"
say "  Etsy StatsD totals: $(node "$DIR/etsy_mgmt.js" $EMP counts || echo 'n/a')"
say "  tabad proxy totals: $(curl -s "http://127.0.0.1:$PP/metrics" | grep -E '^taba_proxy_(lines|bad_lines|type_conflicts)_total' | tr '\n' ' ')"

median() {  # median of the numbers on stdin ("n/a" skipped); "n/a" if none
  grep -v 'n/a' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a"; exit }
    printf "%.6f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
say "medians of $RUNS run(s) of ${DURATION} s; CPU is the daemon's (pinned to CPU 0)"
printf '| %-18s | %15s | %13s | %26s | %22s | %20s |\n' "daemon" "offered lines/s" "lines offered" "lines received (% offered)" "CPU-s per million lines" "lines per CPU-second"
printf '|%s|%s|%s|%s|%s|%s|\n' "--------------------" "-----------------" "---------------" "----------------------------" "------------------------" "----------------------"
for d in etsy tabad; do
  case $d in etsy) label="Etsy StatsD $ETSY_VERSION" ;; *) label="tabad client-proxy" ;; esac
  for rate in $RATES; do
    rows=$(awk -v d="$d" -v r="$rate" '$1 == d && $2 == r' "$DIR/results.txt")
    [ -n "$rows" ] || { printf '| %-18s | %15s | %13s | %26s | %22s | %20s |\n' "$label" "$rate" "n/a" "n/a" "n/a" "n/a"; continue; }
    sent=$(echo "$rows" | awk '{ print $3 }' | median)
    recv=$(echo "$rows" | awk '{ print $4 }' | median)
    pct=$(echo "$rows" | awk '{ print ($3 > 0 ? 100 * $4 / $3 : 0) }' | median)
    perm=$(echo "$rows" | awk '{ print $7 }' | median)
    lpc=$(echo "$rows" | awk '{ print $8 }' | median)
    [ "$perm" = n/a ] || perm=$(printf '%.3f' "$perm")
    [ "$lpc" = n/a ] || lpc=$(printf '%.0f' "$lpc")
    printf '| %-18s | %15s | %13.0f | %15.0f (%6.2f %%) | %22s | %20s |\n' "$label" "$rate" "$sent" "$recv" "$pct" "$perm" "$lpc"
  done
done
