#!/bin/sh
# statsd_compare.sh: tabad's whole StatsD chain and the StatsD daemons anyone
# can install here (netdata and collectd from Debian, Etsy StatsD from npm),
# side by side on the same machine and the same UDP workload.
#
# Targets (TARGETS, default all five, in this order):
#   tabad-chain   client-proxy -> agent -> fe (roles fe,be, embedded store):
#                 three tabad processes, as bench/lib.sh start_statsd_chain
#                 starts them
#   tabad-direct  client-proxy -> fe: the proxy posts its bodies to the fe
#   netdata       netdata's statsd plugin (a private instance: see below)
#   collectd      collectd's statsd plugin (a private instance: see below)
#   etsy          Etsy StatsD (node), no backend, no flush during a run
# Every target is started fresh for each run and stopped after it, so an
# idle daemon never takes CPU from the one measured and every run starts
# from the same empty state. Runs alternate the targets (one run of each,
# then the next), at each rate for DURATION seconds, RUNS times; the tables
# give medians.
#
# Pinning: the daemon set of every target on CPU 0, statsd_bench (the
# sender) alone on CPU 1. For a peer that is its process with all its
# threads and children; for tabad the client-proxy on CPU 0 and its agent
# and fe on CHAIN_CPUS, by default 0 as well, so every target has the same
# one core. CHAIN_CPUS=0-1 leaves the agent and fe unpinned as on a user's
# host (they then also take CPU from the sender, which may fall short of
# the rate: compare its "sent").
#
# Workload: statsd_bench's pre-built lines, 20 per datagram, 1,000 names
# (MIX=dogstatsd, the default: counters, sampled counters, timers with
# DogStatsD tags, histograms, gauges, sets; MIX=plain: no tags, timers in
# place of histograms, which every daemon here parses). The last line of
# every datagram is "bench.check:1|c", so a daemon's count of bench.check is
# the number of datagrams it parsed.
#
# "Received" is each daemon's own count of lines taken off its socket:
#   tabad:    taba_proxy_lines_total + taba_proxy_bad_lines_total (the
#             proxy's /metrics)
#   netdata:  the sum of the dimensions of its netdata.statsd_events chart
#             but "errors" (gauges, counters, timers, meters, histograms,
#             sets, dictionaries, unknown: one per line parsed), raw, read
#             from /api/v1/allmetrics?format=prometheus&source=as-collected
#   collectd: no such counter, so at the aggregate level: 20 x the value of
#             the bench.check counter (a derive; collectd's csv plugin writes
#             it every 1 s interval, a filter chain lets nothing else out)
#   etsy:     statsd.metrics_received (management port, `counters`),
#             incremented once per non-empty line before it is parsed
# statsd_bench reads the count before and after each run (through stable.sh:
# until two reads 1.5 s apart agree, the same for every target, since
# netdata and collectd publish once a second) and takes the difference.
# For tabad the count is only given once the fe holds every bench.check
# the proxy parsed (POST /flush, then the fe's all-time count of
# bench.check against taba_proxy_datagrams_total, for up to CHECK_TIMEOUT
# seconds): the chain delivered what it received, not just received it. A
# run where it does not is reported as a MISMATCH, on stderr and in the
# table.
#
# CPU is utime + stime of every process of the target and all its
# descendants (children already reaped through cutime + cstime), from the
# start of sending to the last count: for tabad-chain proxy + agent + fe,
# for tabad-direct proxy + fe. The per-run lines show it per process.
#
# Receive buffers: tabad's proxy asks UDP_RCVBUF_BYTES (default 32 MiB) with
# SO_RCVBUFFORCE, which the kernel doubles (rb 64 MiB). No peer has an
# option for it, so as root the script gives each the same rb while it
# starts (a socket's buffer is fixed when it is created) and restores the
# sysctls as soon as the peer's UDP socket is bound:
#   collectd, Etsy: net.core.rmem_default = 2 x UDP_RCVBUF_BYTES (a new
#             socket's sk_rcvbuf, not doubled)
#   netdata:  asks SO_RCVBUF 33554431 itself, capped at net.core.rmem_max,
#             so rmem_max = UDP_RCVBUF_BYTES (rb 2 x min(33554431, that))
# Every target's kernel rb (ss -m) is printed. Not root, or SAME_RCVBUF=0:
# the peers get the kernel's defaults. ETSY_RCVBUF_BYTES, if set, gives Etsy
# StatsD that SO_RCVBUF through a node --require preload instead (as before;
# net.core.rmem_max is raised to it for its start).
#
# Private peer configurations (in the run's scratch directory):
#   netdata   netdata -D with only the statsd plugin and "netdata monitoring"
#             (its statsd charts need it) on, memory mode ram, no health, ML,
#             registry, cloud or external plugins; its web server on a
#             loopback port (1 thread) for the counts; statsd UDP only
#   collectd  collectd -f with statsd, csv (bench.check only, see above),
#             match_regex (the filter) and logfile (to /dev/null: collectd
#             logs every line it cannot parse); Interval 1, 1 read and 1
#             write thread
#
# Usage: bench/statsd_compare.sh [--short] [--burst [N]] [BUILD_DIR] [RUNS] [DURATION] [RATES...]
#   e.g. bench/statsd_compare.sh build 3 5 100000 300000 1000000   (defaults)
#        bench/statsd_compare.sh --short build   (quick check: RUNS=1 DURATION=2)
#        bench/statsd_compare.sh --burst build 3  (3 bursts of 1,000,000 lines)
#   --burst [N]: instead of rates, statsd_bench sends N lines (default
#   1,000,000) as fast as it can to each target, then waits for the counts
#   to settle; the table gives the lines each kept of N.
# Environment:
#   TARGETS            the targets to run (default: all five)
#   MIX                dogstatsd (default) or plain
#   CHAIN_CPUS         taskset list for tabad's agent and fe (default 0)
#   UDP_RCVBUF_BYTES   receive buffer asked by tabad's proxy (default 33554432)
#   SAME_RCVBUF        1 (default): the peers get the same rb as root; 0: stock
#   ETSY_RCVBUF_BYTES  see above
#   CHECK_TIMEOUT      seconds to wait for the fe to hold what the proxy
#                      parsed (default 60)
#
# Needs: for netdata `apt-get install netdata-core`, for collectd
# `apt-get install collectd-core`, for Etsy StatsD node and npm (`apt-get
# install nodejs npm`; it is installed once with `npm install --prefix
# BUILD_DIR/etsy-statsd statsd`); taskset, curl, ss and jq.
set -eu
. "$(dirname "$0")/lib.sh"
SHORT=0
BURST=""
while :; do
  case "${1:-}" in
    --short) SHORT=1; shift ;;
    --burst)
      shift
      case "${1:-}" in
        '' | *[!0-9]*) BURST=1000000 ;;
        *) BURST=$1; shift ;;
      esac
      ;;
    --burst=*) BURST=${1#--burst=}; shift ;;
    *) break ;;
  esac
done
BUILD=${1:-build}
if [ $SHORT = 1 ]; then RUNS=${2:-1}; DURATION=${3:-2}; else RUNS=${2:-3}; DURATION=${3:-5}; fi
[ $# -gt 3 ] && shift 3 || set --
RATES=${*:-100000 300000 1000000}
UDP_RCVBUF_BYTES=${UDP_RCVBUF_BYTES:-33554432}
SAME_RCVBUF=${SAME_RCVBUF:-1}
ETSY_RCVBUF_BYTES=${ETSY_RCVBUF_BYTES:-}
TARGETS=${TARGETS:-tabad-chain tabad-direct netdata collectd etsy}
MIX=${MIX:-dogstatsd}
CHAIN_CPUS=${CHAIN_CPUS:-0}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-60}
LINES_PER_DATAGRAM=20
CHECK_NAME=bench.check

say() { echo "statsd_compare: $*"; }
die() { echo "statsd_compare: $*" >&2; exit 1; }

case "$BURST" in '' | *[!0-9]*) [ -z "$BURST" ] || die "--burst takes a number of lines, not '$BURST'" ;; esac
[ -z "$BURST" ] || [ "$BURST" -gt 0 ] || die "--burst takes a positive number of lines"
case "$MIX" in dogstatsd | plain) ;; *) die "MIX is dogstatsd or plain, not '$MIX'" ;; esac
for t in $TARGETS; do
  case $t in
    tabad-chain | tabad-direct | netdata | collectd | etsy) ;;
    *) die "unknown target '$t' in TARGETS (tabad-chain tabad-direct netdata collectd etsy)" ;;
  esac
done
has_target() { case " $TARGETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

for tool in taskset curl ss jq; do
  command -v $tool >/dev/null 2>&1 || die "$tool not found"
done
if has_target etsy; then
  for tool in node npm; do
    command -v $tool >/dev/null 2>&1 ||
      die "$tool not found: Etsy StatsD needs Node.js and npm; install them with 'apt-get install nodejs npm' (Debian/Ubuntu) and rerun, or leave etsy out of TARGETS"
  done
fi
NETDATA_BIN=/usr/sbin/netdata
COLLECTD_BIN=/usr/sbin/collectd
COLLECTD_PLUGINS=/usr/lib/collectd
if has_target netdata; then
  [ -x $NETDATA_BIN ] || die "$NETDATA_BIN not found: install it with 'apt-get install netdata-core', or leave netdata out of TARGETS"
fi
if has_target collectd; then
  [ -x $COLLECTD_BIN ] && [ -f $COLLECTD_PLUGINS/statsd.so ] ||
    die "collectd or its statsd plugin not found: install them with 'apt-get install collectd-core', or leave collectd out of TARGETS"
fi
[ -x "$BUILD/tabad" ] || die "$BUILD/tabad not found: build it first (cmake --build $BUILD --target tabad statsd_bench and the plugins)"
[ -x "$BUILD/bench/statsd_bench" ] || die "$BUILD/bench/statsd_bench not found: build it first (cmake --build $BUILD --target statsd_bench)"
BUILD=$(cd "$BUILD" && pwd)

# Etsy StatsD, installed once per build directory.
if has_target etsy; then
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
fi

# The scratch directory: TOP holds the scripts and results, DIR the current
# run's daemons (configs, data, logs; removed after the run).
TOP=$(mktemp -d /tmp/taba-statsd-compare-XXXXXX)
DIR=$TOP
RMEM=/proc/sys/net/core
RMEM_DEFAULT0=$(cat $RMEM/rmem_default)
RMEM_MAX0=$(cat $RMEM/rmem_max)
RMEM_TOUCHED=0
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

# peer_buffers_on RMEM_DEFAULT [RMEM_MAX]: as root, sets the sysctls a
# peer's new socket takes its buffer from; peer_buffers_off restores them.
peer_buffers_on() {
  [ $IS_ROOT = 1 ] || return 0
  RMEM_TOUCHED=1
  echo "$1" >$RMEM/rmem_default
  [ -z "${2:-}" ] || echo "$2" >$RMEM/rmem_max
}
peer_buffers_off() {
  [ $RMEM_TOUCHED = 1 ] || return 0
  echo "$RMEM_DEFAULT0" >$RMEM/rmem_default
  echo "$RMEM_MAX0" >$RMEM/rmem_max
  RMEM_TOUCHED=0
}

# The processes of the run under way (stop_run ends them; so does the trap).
RUN_PIDS=""
stop_run() {
  [ -n "$RUN_PIDS" ] || return 0
  # Each started pid and its descendants, taken before any of them exits.
  all=""
  for p in $RUN_PIDS; do all="$all $p $(descendants "$p")"; done
  for p in $RUN_PIDS; do kill "$p" 2>/dev/null || true; done
  n=0
  while [ $n -lt 100 ]; do
    alive=""
    for p in $all; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -n "$alive" ] || break
    sleep 0.1
    n=$((n + 1))
  done
  for p in $all; do kill -9 "$p" 2>/dev/null || true; done
  for p in $RUN_PIDS; do wait "$p" 2>/dev/null || true; done
  RUN_PIDS=""
  PIDS=""
}
# The descendants of a pid (children first), from /proc/*/stat.
descendants() {
  for s in /proc/[0-9]*/stat; do
    sed 's/.*) [^ ]* \([0-9]*\).*/\1/' "$s" 2>/dev/null | {
      read -r ppid || exit 0
      [ "$ppid" = "$1" ] || exit 0
      p=${s#/proc/}
      p=${p%/stat}
      echo "$p"
      descendants "$p"
    }
  done
}
cleanup() {
  trap - EXIT INT TERM
  stop_run
  peer_buffers_off
  rm -rf "$TOP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free loopback ports (TCP and UDP), from a per-process base.
NEXT_PORT=$((30000 + $$ % 20000))
in_use() { [ -n "$(ss -Htuan "( sport = :$1 )" 2>/dev/null)" ]; }
free_port() {
  while in_use $NEXT_PORT; do NEXT_PORT=$((NEXT_PORT + 1)); done
  FREE_PORT=$NEXT_PORT
  NEXT_PORT=$((NEXT_PORT + 1))
  [ $NEXT_PORT -lt 60000 ] || NEXT_PORT=30000
}

# Waits until a command succeeds, at most $1 seconds.
wait_for() {
  wf_limit=$1
  shift
  wf_n=0
  until "$@" >/dev/null 2>&1; do
    wf_n=$((wf_n + 1))
    [ $wf_n -le $((wf_limit * 10)) ] || return 1
    sleep 0.1
  done
}
udp_bound() { [ -n "$(ss -Huan "( sport = :$1 )" 2>/dev/null)" ]; }
# The kernel's receive buffer of the socket bound to a UDP port (ss's skmem
# rb: what SO_RCVBUF reads back), or "?".
sock_rb() {
  ss -Huanm "( sport = :$1 )" 2>/dev/null | grep -o 'rb[0-9]*' | head -1 | sed 's/rb//' | grep . || echo '?'
}

# ---- The count scripts (statsd_bench --received-cmd runs them).
# stable.sh INTERVAL CMD...: reads until two reads INTERVAL s apart agree
# (at most 60 reads), so a backlog still draining after the settle is
# counted in its own run, and netdata's and collectd's once-a-second
# publishing has happened in between.
cat >"$TOP/stable.sh" <<'EOF'
iv=$1
shift
prev=$("$@") || exit 1
i=0
while [ $i -lt 60 ]; do
  sleep "$iv"
  cur=$("$@") || exit 1
  [ "$cur" = "$prev" ] && break
  prev=$cur
  i=$((i + 1))
done
echo "$prev"
EOF
# tabad_count.sh PROXY_PORT FE_PORT OUT: the proxy's received lines, once
# the fe holds as many bench.check as the proxy parsed datagrams (or after
# CHECK_TIMEOUT s); OUT gets "ok N" or "MISMATCH ...".
cat >"$TOP/tabad_count.sh" <<EOF
pp=\$1
fep=\$2
out=\$3
proxy() {
  curl -sf "http://127.0.0.1:\$pp/metrics" | awk '
    /^taba_proxy_(bad_)?lines_total[ {]/ { l += \$NF; n++ }
    /^taba_proxy_datagrams_total[ {]/ { d += \$NF }
    /^taba_proxy_events_dropped_total[ {]/ { x += \$NF }
    END { if (n == 0) exit 1; printf "%.0f %.0f %.0f\\n", l, d, x }'
}
fe() {
  curl -sf -X POST "http://127.0.0.1:\$fep/flush" >/dev/null || return 1
  curl -sf -H 'Accept: application/json' "http://127.0.0.1:\$fep/tabs?name=$CHECK_NAME" |
    jq -r '.["$CHECK_NAME"].pct.count // 0'
}
t=0
while :; do
  counts=\$(proxy) || exit 1
  set -- \$counts
  held=\$(fe) || exit 1
  if [ "\$held" = "\$2" ]; then
    echo "ok \$held" >"\$out"
    break
  fi
  t=\$((t + 1))
  if [ \$t -ge \$(($CHECK_TIMEOUT * 4)) ]; then
    echo "MISMATCH: the fe holds \$held $CHECK_NAME of the \$2 datagrams the proxy parsed (proxy events dropped: \$3)" >"\$out"
    break
  fi
  sleep 0.25
done
echo "\$1"
EOF
# netdata_count.sh WEB_PORT: lines parsed (netdata.statsd_events, raw).
cat >"$TOP/netdata_count.sh" <<'EOF'
curl -sf "http://127.0.0.1:$1/api/v1/allmetrics?format=prometheus&source=as-collected&filter=netdata.statsd_events&server=bench$$" |
  awk '/^netdata_netdata_statsd_events_total\{/ && !/dimension="errors"/ { s += $(NF - 1); n++ }
       END { if (n == 0) exit 1; printf "%.0f\n", s }'
EOF
# collectd_count.sh CSV_DIR: LINES_PER_DATAGRAM x the last bench.check
# value collectd wrote (0 before the first).
cat >"$TOP/collectd_count.sh" <<EOF
f=\$(ls "\$1"/bench/statsd/derive-$CHECK_NAME-* 2>/dev/null | tail -1)
[ -n "\$f" ] || { echo 0; exit 0; }
for try in 1 2 3; do
  v=\$(tail -1 "\$f" | sed -n 's/^[0-9.]*,\([0-9][0-9]*\)\$/\1/p')
  [ -n "\$v" ] && { echo \$((v * $LINES_PER_DATAGRAM)); exit 0; }
  sleep 0.1
done
exit 1
EOF
# etsy_mgmt.js PORT health|received|counts: Etsy StatsD's management port.
cat >"$TOP/etsy_mgmt.js" <<'EOF'
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
if [ -n "$ETSY_RCVBUF_BYTES" ]; then
  # Etsy StatsD creates its socket with dgram.createSocket(type, cb) and has
  # no option for the buffer; this preload adds node's recvBufferSize option
  # (SO_RCVBUF, capped by net.core.rmem_max).
  cat >"$TOP/etsy_rcvbuf.js" <<'EOF'
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
fi

# ---- Starting a target. Each start_<target> starts it in DIR, waits until
# it answers, and sets: T_PIDS (statsd_bench --pid), T_UDP (its StatsD
# port), T_COUNT (the count command), T_NOTE (what runs where), T_CHECK
# (where tabad_count.sh writes its delivery check, else empty).
PEER_RB=$((2 * UDP_RCVBUF_BYTES))
if [ "$SAME_RCVBUF" != 1 ] || [ $IS_ROOT = 0 ]; then PEER_RB=""; fi

start_tabad_target() {  # chain|direct
  free_port; FEP=$FREE_PORT
  free_port; AP=$FREE_PORT
  free_port; PP=$FREE_PORT
  free_port; UP=$FREE_PORT
  if [ "$1" = chain ]; then
    start_statsd_chain "$UDP_RCVBUF_BYTES" "$CHAIN_CPUS"
    RUN_PIDS="$FE $AGENT $PROXY"
    T_PIDS="$PROXY,$AGENT,$FE"
    ports="$FEP $AP $PP"
    T_NOTE="client-proxy pid $PROXY (CPU 0) -> agent pid $AGENT (CPUs $CHAIN_CPUS) -> fe,be pid $FE (CPUs $CHAIN_CPUS)"
  else
    start_statsd_direct "$UDP_RCVBUF_BYTES" "$CHAIN_CPUS"
    RUN_PIDS="$FE $PROXY"
    T_PIDS="$PROXY,$FE"
    ports="$FEP $PP"
    T_NOTE="client-proxy pid $PROXY (CPU 0) -> fe,be pid $FE (CPUs $CHAIN_CPUS)"
  fi
  for p in $ports; do
    wait_for 30 curl -sf "http://127.0.0.1:$p/healthz" || {
      tail -5 "$DIR"/*.log >&2
      die "tabad on port $p did not become healthy in 30 s"
    }
  done
  T_UDP=$UP
  T_CHECK=$DIR/check.txt
  T_COUNT="sh $TOP/tabad_count.sh $PP $FEP $T_CHECK"
  T_NOTE="$T_NOTE; $(grep -o 'UDP receive buffer.*' "$DIR/proxy.log" || echo "asked $UDP_RCVBUF_BYTES bytes")"
}
start_tabad_chain() { start_tabad_target chain; }
start_tabad_direct() { start_tabad_target direct; }

start_netdata() {
  free_port; NDW=$FREE_PORT
  free_port; UP=$FREE_PORT
  nd=$DIR/netdata
  mkdir -p "$nd/etc" "$nd/cache" "$nd/lib" "$nd/log" "$nd/plugins"
  cat >"$nd/netdata.conf" <<EOF
[global]
	run as user = $(id -un)
	hostname = bench
	memory mode = ram
	history = 3600
	update every = 1
	process scheduling policy = keep
[directories]
	config = $nd/etc
	stock config = /usr/lib/netdata/conf.d
	log = $nd/log
	cache = $nd/cache
	lib = $nd/lib
	home = $nd/cache
	lock = $nd/lib/lock
	plugins = $nd/plugins
	health config = $nd/etc/health.d
	stock health config = $nd/etc/health.d
	registry = $nd/lib/registry
[logs]
	debug log = none
	error log = $nd/log/error.log
	access log = none
[health]
	enabled = no
[ml]
	enabled = no
[registry]
	enabled = no
[cloud]
	enabled = no
[web]
	mode = static-threaded
	bind to = 127.0.0.1:$NDW
	web server threads = 1
	enable gzip compression = no
[plugins]
	enable running new plugins = no
	check for new plugins every = 3600
	proc = no
	diskspace = no
	cgroups = no
	tc = no
	idlejitter = no
	timex = no
	checks = no
	apps = no
	perf = no
	slabinfo = no
	nfacct = no
	ebpf = no
	charts.d = no
	python.d = no
	go.d = no
	node.d = no
	fping = no
	ioping = no
	freeipmi = no
	statsd = yes
	netdata monitoring = yes
[statsd]
	enabled = yes
	bind to = udp:127.0.0.1:$UP
	update every (flushInterval) = 1
EOF
  # netdata sets SO_RCVBUF 33554431 on its socket itself: rmem_max caps it.
  [ -z "$PEER_RB" ] || peer_buffers_on "$RMEM_DEFAULT0" "$UDP_RCVBUF_BYTES"
  taskset -c 0 $NETDATA_BIN -D -c "$nd/netdata.conf" >"$DIR/netdata.log" 2>&1 &
  ND_PID=$!
  RUN_PIDS="$ND_PID"
  wait_for 30 udp_bound "$UP" || { peer_buffers_off; tail -20 "$nd/log/error.log" "$DIR/netdata.log" >&2; die "netdata did not bind udp 127.0.0.1:$UP in 30 s"; }
  peer_buffers_off
  wait_for 30 sh "$TOP/netdata_count.sh" "$NDW" || { tail -20 "$nd/log/error.log" >&2; die "netdata's statsd charts did not answer on 127.0.0.1:$NDW in 30 s"; }
  T_PIDS=$ND_PID
  T_UDP=$UP
  T_CHECK=""
  T_COUNT="sh $TOP/netdata_count.sh $NDW"
  T_NOTE="netdata $($NETDATA_BIN -V 2>&1 | head -1 | sed 's/^netdata //') pid $ND_PID (CPU 0; $(ls /proc/$ND_PID/task | wc -l) threads, $(descendants $ND_PID | wc -l) child process(es): $(for c in $(descendants $ND_PID); do tr '\0' ' ' </proc/$c/cmdline; done | sed 's/ *$//')), web 127.0.0.1:$NDW"
}

start_collectd() {
  free_port; UP=$FREE_PORT
  cd_dir=$DIR/collectd
  mkdir -p "$cd_dir/csv"
  cat >"$cd_dir/collectd.conf" <<EOF
Hostname "bench"
FQDNLookup false
BaseDir "$cd_dir"
PIDFile "$cd_dir/collectd.pid"
PluginDir "$COLLECTD_PLUGINS"
TypesDB "/usr/share/collectd/types.db"
Interval 1
ReadThreads 1
WriteThreads 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File "/dev/null"
</Plugin>
LoadPlugin statsd
<Plugin statsd>
  Host "127.0.0.1"
  Port "$UP"
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$cd_dir/csv"
  StoreRates false
</Plugin>
LoadPlugin match_regex
PostCacheChain "BenchOut"
<Chain "BenchOut">
  <Rule "check">
    <Match "regex">
      Plugin "^statsd\$"
      TypeInstance "^bench\\\\.check\$"
    </Match>
    <Target "write">
      Plugin "csv"
    </Target>
    Target "stop"
  </Rule>
  Target "stop"
</Chain>
EOF
  [ -z "$PEER_RB" ] || peer_buffers_on "$PEER_RB"
  taskset -c 0 $COLLECTD_BIN -f -C "$cd_dir/collectd.conf" >"$DIR/collectd.log" 2>&1 &
  CD_PID=$!
  RUN_PIDS="$CD_PID"
  wait_for 30 udp_bound "$UP" || { peer_buffers_off; tail -20 "$DIR/collectd.log" >&2; die "collectd did not bind udp 127.0.0.1:$UP in 30 s"; }
  peer_buffers_off
  T_PIDS=$CD_PID
  T_UDP=$UP
  T_CHECK=""
  T_COUNT="sh $TOP/collectd_count.sh $cd_dir/csv"
  T_NOTE="collectd $($COLLECTD_BIN -h 2>&1 | sed -n 's/^collectd \([^,]*\),.*/\1/p') pid $CD_PID (CPU 0; $(ls /proc/$CD_PID/task | wc -l) threads)"
}

start_etsy() {
  free_port; UP=$FREE_PORT
  free_port; EMP=$FREE_PORT
  cat >"$DIR/etsy.js" <<EOF
{
  address: "127.0.0.1",
  port: $UP,
  mgmt_address: "127.0.0.1",
  mgmt_port: $EMP,
  backends: [],
  flushInterval: 3600000,
  dumpMessages: false,
  debug: false,
  automaticConfigReload: false
}
EOF
  opts=""
  if [ -n "$ETSY_RCVBUF_BYTES" ]; then
    opts="--require $TOP/etsy_rcvbuf.js"
    [ $IS_ROOT = 0 ] || [ "$RMEM_MAX0" -ge "$ETSY_RCVBUF_BYTES" ] || peer_buffers_on "$RMEM_DEFAULT0" "$ETSY_RCVBUF_BYTES"
  elif [ -n "$PEER_RB" ]; then
    peer_buffers_on "$PEER_RB"
  fi
  # shellcheck disable=SC2086
  (cd "$ETSY" && ETSY_RCVBUF_BYTES=$ETSY_RCVBUF_BYTES exec taskset -c 0 node $opts stats.js "$DIR/etsy.js") \
    >"$DIR/etsy.log" 2>&1 &
  ETSY_PID=$!
  RUN_PIDS="$ETSY_PID"
  wait_for 30 udp_bound "$UP" || { peer_buffers_off; tail -20 "$DIR/etsy.log" >&2; die "Etsy StatsD did not bind udp 127.0.0.1:$UP in 30 s"; }
  peer_buffers_off
  wait_for 30 node "$TOP/etsy_mgmt.js" $EMP health || {
    tail -20 "$DIR/etsy.log" >&2
    die "Etsy StatsD did not answer on its management port in 30 s"
  }
  # The pid measured must be node itself (the subshell execs taskset, which
  # execs node; Etsy StatsD renames its process title, so look at the binary).
  case "$(readlink "/proc/$ETSY_PID/exe" 2>/dev/null)" in
    */node*) ;;
    *) die "pid $ETSY_PID runs $(readlink "/proc/$ETSY_PID/exe" 2>/dev/null), not node" ;;
  esac
  T_PIDS=$ETSY_PID
  T_UDP=$UP
  T_CHECK=""
  T_COUNT="node $TOP/etsy_mgmt.js $EMP received"
  T_NOTE="Etsy StatsD $ETSY_VERSION (node $(node --version)) pid $ETSY_PID (CPU 0)"
  [ -z "$ETSY_RCVBUF_BYTES" ] || T_NOTE="$T_NOTE; $(grep -o 'SO_RCVBUF reads.*' "$DIR/etsy.log" || echo "asked $ETSY_RCVBUF_BYTES") (preload)"
}

label() {
  case $1 in
    tabad-chain) echo "tabad proxy -> agent -> fe,be" ;;
    tabad-direct) echo "tabad proxy -> fe,be" ;;
    netdata) echo "netdata $($NETDATA_BIN -V 2>&1 | head -1 | sed 's/^netdata v//')" ;;
    collectd) echo "collectd $($COLLECTD_BIN -h 2>&1 | sed -n 's/^collectd \([0-9.]*[0-9]\).*/\1/p')" ;;
    etsy) echo "Etsy StatsD $ETSY_VERSION" ;;
  esac
}

if [ -n "$PEER_RB" ]; then
  RB_NOTE="the peers get rb $PEER_RB while they start (as root; sysctls restored right after)"
elif [ $IS_ROOT = 0 ]; then
  RB_NOTE="not root: the peers run with the kernel defaults (rmem_default $RMEM_DEFAULT0, rmem_max $RMEM_MAX0)"
else
  RB_NOTE="SAME_RCVBUF=0: the peers run with the kernel defaults (rmem_default $RMEM_DEFAULT0, rmem_max $RMEM_MAX0)"
fi
say "targets: $TARGETS; mix $MIX, $LINES_PER_DATAGRAM lines per datagram (the last one $CHECK_NAME:1|c)"
say "receive buffers: tabad's proxy asks $UDP_RCVBUF_BYTES (SO_RCVBUFFORCE); $RB_NOTE"
say "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
if [ -n "$BURST" ]; then
  say "sender: statsd_bench on CPU 1; $RUNS burst(s) of $BURST lines per target"
  RATES=burst
else
  say "sender: statsd_bench on CPU 1; $RUNS run(s) x ${DURATION} s per target and rate; rates: $RATES"
fi

# run_one TARGET RATE: one run on a freshly started TARGET; appends to
# results.txt: target rate sent received loss cpu_s cpu_per_m lines_per_cpu
# delivered cpu_by_pid.
RUN_N=0
SEEN=""
run_one() {
  tg=$1
  rt=$2
  RUN_N=$((RUN_N + 1))
  DIR=$TOP/run-$RUN_N
  mkdir -p "$DIR"
  PIDS=""
  case $tg in
    tabad-chain) start_tabad_chain ;;
    tabad-direct) start_tabad_direct ;;
    netdata) start_netdata ;;
    collectd) start_collectd ;;
    etsy) start_etsy ;;
  esac
  case " $SEEN " in
    *" $tg "*) ;;
    *)
      SEEN="$SEEN $tg"
      say "$tg: $T_NOTE; udp 127.0.0.1:$T_UDP, kernel rb $(sock_rb "$T_UDP") bytes"
      ;;
  esac
  if [ "$rt" = burst ]; then
    how="--burst $BURST"
  else
    how="--rate $rt --duration $DURATION"
  fi
  # shellcheck disable=SC2086
  if "$BUILD/bench/statsd_bench" --target "127.0.0.1:$T_UDP" $how --mix "$MIX" --check-name $CHECK_NAME \
    --lines-per-datagram $LINES_PER_DATAGRAM --received-cmd "sh $TOP/stable.sh 1.5 $T_COUNT" --pid "$T_PIDS" \
    --bench-cpu 1 >"$TOP/run.txt" 2>&1; then
    line=$(grep '^statsd_bench:' "$TOP/run.txt" || true)
  else
    line=""
  fi
  delivered=n/a
  if [ -n "$T_CHECK" ]; then
    delivered=$(cat "$T_CHECK" 2>/dev/null || echo "MISMATCH: no delivery check result")
    case $delivered in
      ok*) delivered=ok ;;
      *)
        echo "statsd_compare: *** $tg at $rt: $delivered ***" >&2
        delivered=MISMATCH
        ;;
    esac
  fi
  rb=$(sock_rb "$T_UDP")
  stop_run
  rm -rf "$DIR"
  DIR=$TOP
  if [ -z "$line" ]; then
    say "$tg at $rt: run failed:"
    cat "$TOP/run.txt" >&2
    return 0
  fi
  field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  if [ "$rt" != burst ] && [ "$(field sent_lines)" -lt "$(echo "$rt $DURATION" | awk '{ printf "%.0f", 0.95 * $1 * $2 }')" ]; then
    say "$tg at $rt: the sender offered only $(field sent_lines) lines in ${DURATION} s (CPU 1 busy, or the rate beyond one sender): a lower rate in this run"
  fi
  echo "$tg $rt $(field sent_lines) $(field received_lines) $(field loss_pct) $(field receiver_cpu_s)" \
    "$(field cpu_s_per_million_lines) $(field lines_per_cpu_s) $delivered $(field cpu_by_pid) $(field send_secs)" \
    >>"$TOP/results.txt"
  printf '%-13s %9s %10s %6s %10s %7.2f %7s %9s %11s %7s  %-8s %s rb %s\n' "$tg" "$rt" "$(field sent_lines)" \
    "$(field send_secs)" "$(field received_lines)" "$(field loss_pct)" "$(field receiver_cpu_s)" \
    "$(field cpu_s_per_million_lines)" "$(field lines_per_cpu_s)" "$(field receiver_wait_s)" "$delivered" \
    "$(field cpu_by_pid)" "$rb"
}

: >"$TOP/results.txt"
printf '%-13s %9s %10s %6s %10s %7s %7s %9s %11s %7s  %-8s %s\n' "target" "rate" "sent" "send_s" "received" "loss%" \
  "cpu_s" "cpu_s/M" "lines/cpu_s" "wait_s" "fe check" "cpu_s by pid (tabad: proxy,agent,fe), kernel rb"
for rate in $RATES; do
  i=0
  while [ $i -lt "$RUNS" ]; do
    for t in $TARGETS; do run_one "$t" "$rate"; done
    i=$((i + 1))
  done
done
say "after the runs: load average $(cut -d' ' -f1-3 /proc/loadavg)"

median() {  # median of the numbers on stdin ("n/a" skipped); "n/a" if none
  grep -v 'n/a' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a"; exit }
    printf "%.6f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# fe check column: ok / MISMATCH counts over the runs, or n/a.
checks() {
  awk '{ print $9 }' | sort | uniq -c | awk '$2 != "n/a" { printf "%s%s %d/%d", sep, $2, $1, total; sep = ", " }' total="$1"
}
echo
if [ -n "$BURST" ]; then
  say "bursts of $BURST lines, medians of $RUNS run(s); CPU is every process of the target (see the header)"
  printf '| %-29s | %12s | %9s | %28s | %9s | %23s | %14s |\n' "target" "burst lines" "sent in s" "lines received (% of burst)" "CPU-s" "CPU-s per million lines" "fe check"
  printf '|%s|%s|%s|%s|%s|%s|%s|\n' "-------------------------------" "--------------" "-----------" "------------------------------" "-----------" "-------------------------" "----------------"
else
  say "medians of $RUNS run(s) of ${DURATION} s; CPU is every process of the target (see the header)"
  printf '| %-29s | %15s | %13s | %26s | %22s | %20s | %14s |\n' "target" "offered lines/s" "lines offered" "lines received (% offered)" "CPU-s per million lines" "lines per CPU-second" "fe check"
  printf '|%s|%s|%s|%s|%s|%s|%s|\n' "-------------------------------" "-----------------" "---------------" "----------------------------" "------------------------" "----------------------" "----------------"
fi
for t in $TARGETS; do
  name=$(label "$t")
  for rate in $RATES; do
    rows=$(awk -v d="$t" -v r="$rate" '$1 == d && $2 == r' "$TOP/results.txt")
    if [ -z "$rows" ]; then
      if [ -n "$BURST" ]; then
        printf '| %-29s | %12s | %9s | %28s | %9s | %23s | %14s |\n' "$name" "$BURST" "n/a" "n/a" "n/a" "n/a" "n/a"
      else
        printf '| %-29s | %15s | %13s | %26s | %22s | %20s | %14s |\n' "$name" "$rate" "n/a" "n/a" "n/a" "n/a" "n/a"
      fi
      continue
    fi
    n=$(echo "$rows" | wc -l)
    sent=$(echo "$rows" | awk '{ print $3 }' | median)
    recv=$(echo "$rows" | awk '{ print $4 }' | median)
    pct=$(echo "$rows" | awk '{ print ($3 > 0 ? 100 * $4 / $3 : 0) }' | median)
    cpu=$(echo "$rows" | awk '{ print $6 }' | median)
    perm=$(echo "$rows" | awk '{ print $7 }' | median)
    lpc=$(echo "$rows" | awk '{ print $8 }' | median)
    chk=$(echo "$rows" | checks "$n")
    [ -n "$chk" ] || chk=n/a
    [ "$perm" = n/a ] || perm=$(printf '%.3f' "$perm")
    [ "$lpc" = n/a ] || lpc=$(printf '%.0f' "$lpc")
    [ "$cpu" = n/a ] || cpu=$(printf '%.2f' "$cpu")
    if [ -n "$BURST" ]; then
      secs=$(echo "$rows" | awk '{ print $11 }' | median)
      [ "$secs" = n/a ] || secs=$(printf '%.2f' "$secs")
      printf '| %-29s | %12.0f | %9s | %15.0f (%7.2f %%) | %9s | %23s | %14s |\n' "$name" "$sent" "$secs" "$recv" "$pct" "$cpu" "$perm" "$chk"
    else
      printf '| %-29s | %15s | %13.0f | %15.0f (%6.2f %%) | %22s | %20s | %14s |\n' "$name" "$rate" "$sent" "$recv" "$pct" "$perm" "$lpc" "$chk"
    fi
  done
done
if grep -q ' MISMATCH ' "$TOP/results.txt"; then
  echo "statsd_compare: *** in some runs the fe did not hold what the proxy received (see above) ***" >&2
  exit 1
fi
