#!/usr/bin/env python3
# python_client_bench.py: the cost of the Python client (clients/python,
# package taba; docs/python.md) on its record path and on its flush, and,
# with --original, the same figures for the original Taba Python client.
#
# Setting (as users run it): one tabad, roles fe and be with the embedded
# store, on a free loopback port of the same host (not pinned); each
# measurement runs in a fresh interpreter (sys.executable), whose flush
# thread really POSTs to that tabad. Measurements, each repeated --runs times,
# the two clients interleaved run by run (ours then the original on odd runs,
# the other way round on even runs) since a small machine is noisy:
#   record1  ns per `client.Counter(name, 1)` call (wall time / calls) and
#            process CPU per call, one thread, --calls calls, flush_period
#            1 s: the flush thread takes the events every second, encodes
#            and posts them meanwhile, and its CPU (and its share of the GIL)
#            is in the figures ("flushes begun during the timed loop" says
#            how many of its flushes started before the loop ended);
#   recordT  the same with --threads (T) threads of --thread-calls calls
#            each, started together: all calls / wall time, process CPU /
#            all calls;
#   idle1, idleT  the record path alone: flush_period 3600, so nothing
#            flushes during the loop; --idle-calls calls in all;
#   flush    --flush-events Counter events recorded with flush_period 3600
#            (nothing flushes), then process CPU (time.process_time) and wall
#            time around client.Flush(30): the recording thread is idle, so
#            that is the flush thread's encode + HTTP cost; then the CPU of
#            encoding the same events alone (a copy taken before the flush);
#   mixed    the same for a quarter each of Counter, Percentile, Gauge with
#            a string and Buffer with (string, expiry).
# After every run the benchmark checks that tabad counted every event (GET
# /tabs?name=... with Accept: application/json, the 1d count; Gauge and
# Buffer: that the tab exists). Our client runs with max_pending_events
# raised to --max-pending (default 4,000,000) so that no call is refused as
# dropped_full (with the default 250,000, a loop that does nothing but
# record outruns the flush thread, which shares the GIL with it: the drops
# are counted, and this benchmark measures costs, not drops; run it with
# --max-pending 250000 to see them), and max_retry_bytes to
# --max-retry-mb (default 512 MiB): at ~1.5 M events/s its bodies can queue
# past the default 64 MiB while tabad is slow (e.g. after the original's
# large posts), and the oldest are then dropped as dropped_retry_overflow.
# The drops are reported.
#
# The original client (--original PATH: a checkout of it, or its src/
# directory) is Python 2 code. At run time the benchmark copies its taba/
# package to a temporary directory, converts taba/__init__.py, client/,
# common/ and handlers/ with lib2to3, and gives it stand-ins for modules it
# imports: cjson (json.dumps / json.loads: same text, but the real cjson is a
# C extension, so its encode figures are an estimate) and, when the
# interpreter has no `requests`, requests (a session whose post() sends the
# body over one keep-alive http.client connection). Its figures: the record
# runs after client.Initialize(client_id, url, flush_period) (its record path
# takes no lock: with several threads, events can be lost at a flush); flush:
# its engine's _Flush() (encode + post, what its flush thread calls) in the
# main thread, then its transport.Encode() of the same events alone. It sends
# one body per flush whatever its size: tabad refuses a body of more than
# 1,000,000 events or 64 MiB (413), which the events rows show. Its encoder
# calls time.sleep(0) once per event: Python 2 did that with a zero-timeout
# select() (under a microsecond), Python 3.11 with clock_nanosleep(), which
# sleeps the timer slack (~50 us on Linux). So its transport module is given
# a `time` whose sleep() does what Python 2 did (the figures compared), and
# the flush is measured once more unchanged (rows "original unchanged on
# Python 3"). To count flushes, the benchmark wraps each client's encode
# function at run time. Nothing of the original's code is in this file. What
# does not work is reported as not measured, with the reason.
#
# Usage: bench/python_client_bench.py [--tabad PATH] [--original PATH] [--runs N]
#          [--calls N] [--threads T] [--thread-calls N] [--idle-calls N]
#          [--flush-events N] [--max-pending N] [--max-retry-mb N]
#          [--child-timeout S]
#   --tabad       the tabad binary (default $TABAD_PATH, else build/tabad)
#   --original    the original client's source tree (default: not measured)
#   --runs        runs of every measurement; the table shows medians (5)
#   --calls       calls of the 1-thread record run (3,000,000: about three
#                 flush periods)
#   --threads     threads of the multi-thread runs (8), each --thread-calls
#                 calls (375,000)
#   --idle-calls  calls of each idle run, over all its threads (500,000:
#                 the original sends them in one body, which tabad takes
#                 up to 1,000,000 events)
#   --flush-events  events of the flush and mixed runs (100,000)
#   --max-pending, --max-retry-mb  our client's max_pending_events and
#                 max_retry_bytes (see above)
#   --child-timeout seconds before one measurement is cut off (300)
# Prints one line per measurement (key=value), then a table of medians (min-
# max). Standard library only (Python 3.9 or later; lib2to3 for --original,
# which Python 3.13 no longer has). Takes about a minute with the defaults,
# about 12 with --original, on a 2-core machine.

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PACKAGE_ROOT = os.path.join(REPO, "clients", "python")
WARMUP_CALLS = 1000
RESULT_PREFIX = "python_client_bench-result "


# -- the measured process -------------------------------------------------------


def time_calls(module, name, threads, calls, flushes=lambda: 0):
    """Wall and process CPU time of `threads` threads calling
    module.Counter(name, 1) `calls` times each; flushes() counts the
    client's flushes begun so far (encodes of recorded events)."""
    import itertools
    import threading

    for _ in range(WARMUP_CALLS):
        module.Counter(name, 1)

    def work(barrier=None):
        if barrier is not None:
            barrier.wait()
        for _ in itertools.repeat(None, calls):
            module.Counter(name, 1)

    flushes0 = flushes()
    if threads == 1:
        c0, t0 = time.process_time(), time.perf_counter()
        work()
        t1, c1 = time.perf_counter(), time.process_time()
    else:
        barrier = threading.Barrier(threads + 1)
        workers = [threading.Thread(target=work, args=(barrier,)) for _ in range(threads)]
        for w in workers:
            w.start()
        c0, t0 = time.process_time(), time.perf_counter()
        barrier.wait()
        for w in workers:
            w.join()
        t1, c1 = time.perf_counter(), time.process_time()
    flushes1 = flushes()
    total = threads * calls
    return {
        "ns_per_call": (t1 - t0) / total * 1e9,
        "cpu_ns_per_call": (c1 - c0) / total * 1e9,
        "wall_s": t1 - t0,
        "calls": total,
        "flushes_in_loop": flushes1 - flushes0,
        "expect": {name: total + WARMUP_CALLS},
    }


def record_mix(module, names, events, expiry):
    """events/4 rounds of Counter, Percentile, Gauge (string), Buffer."""
    counter, percentile, gauge, buffer = names
    rounds = events // 4
    for i in range(rounds):
        module.Counter(counter, 1)
        module.Percentile(percentile, 12.5)
        module.Gauge(gauge, "v7")
        module.Buffer(buffer, ("item", expiry))
    return {counter: rounds, percentile: rounds}, [gauge, buffer]


def child_ours(spec):
    sys.path.insert(0, spec["package_root"])
    from taba import _encode, client

    case = spec["case"]
    client.Initialize(
        client_id=spec["client_id"],
        event_post_url=spec["post_url"],
        flush_period=spec["flush_period"],
        max_pending_events=spec["max_pending"],
        max_retry_bytes=spec["max_retry_mb"] << 20,
    )
    result = {}
    name = spec["name"]
    if case.startswith(("record", "idle")):
        flushes = [0]
        engine = client._get()
        encode = engine._encoder.encode

        def counted_encode(events):
            flushes[0] += 1
            return encode(events)

        engine._encoder.encode = counted_encode  # the flush thread calls it once per flush
        result.update(time_calls(client, name, spec["threads"], spec["calls"], lambda: flushes[0]))
        result["final_flush_ok"] = client.Flush(60)
    else:
        if case == "flush":
            for _ in range(spec["events"]):
                client.Counter(name, 1)
            result["expect"], result["exist"] = {name: spec["events"]}, []
        else:
            names = [name + "." + t for t in ("counter", "percentile", "gauge", "buffer")]
            result["expect"], result["exist"] = record_mix(client, names, spec["events"], time.time() + 3600)
        try:
            events = list(client._get()._queue)  # the pending events, for the encode-only figure
        except AttributeError as e:
            events, result["encode_error"] = None, "no pending list to copy (%s)" % e
        c0, t0 = time.process_time(), time.perf_counter()
        ok = client.Flush(30)
        t1, c1 = time.perf_counter(), time.process_time()
        result.update(flush_ok=ok, flush_cpu_ms=(c1 - c0) * 1e3, flush_wall_ms=(t1 - t0) * 1e3)
        if events is not None:
            if len(events) != spec["events"]:
                result["encode_error"] = "%d pending events, not %d" % (len(events), spec["events"])
            encoder = _encode.Encoder(spec["client_id"], 4 << 20)
            c0 = time.process_time()
            bodies, _, _ = encoder.encode(events)
            c1 = time.process_time()
            result.update(encode_cpu_ms=(c1 - c0) * 1e3, body_bytes=sum(len(b.data) for b in bodies),
                          bodies=len(bodies))
    status = client.GetStatus()
    result["dropped"] = sum(v for k, v in status.items() if k.startswith("dropped_"))
    result["posts"] = status["posts_ok"]
    if result["dropped"] or status["posts_failed"]:
        result["errors"] = ["%s=%d" % (k, v) for k, v in sorted(status.items()) if k.startswith("dropped_") and v]
        result["errors"] += ["posts_failed=%d" % status["posts_failed"]]
        result["errors"] += [status[k] for k in ("last_error", "last_invalid") if status[k]]
    client.Stop()
    return result


def _standin_cjson():
    """cjson's encode/decode over the json module (same text for the values
    the client encodes; the real cjson is a C extension)."""
    import types

    module = types.ModuleType("cjson")
    module.encode = json.dumps
    module.decode = json.loads
    module.EncodeError = module.DecodeError = ValueError
    return module


def _standin_requests():
    """requests.session().post(url, data) over one keep-alive http.client
    connection: enough for the original client's flush."""
    import http.client
    import types
    import urllib.parse

    class Response:
        def __init__(self, status_code, text):
            self.status_code = status_code
            self.text = text

    class Session:
        def __init__(self):
            self._conn = None
            self._netloc = None

        def post(self, url, data=None, headers=None, timeout=None):
            parts = urllib.parse.urlsplit(url)
            body = data.encode("utf-8") if isinstance(data, str) else (data or b"")
            for attempt in (0, 1):  # once more on a connection the server closed
                if self._conn is None or self._netloc != parts.netloc:
                    self._conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout or 60)
                    self._netloc = parts.netloc
                try:
                    self._conn.request("POST", parts.path or "/", body=body, headers=dict(headers or {}))
                    reply = self._conn.getresponse()
                    response = Response(reply.status, reply.read().decode("utf-8", "replace"))
                    if response.status_code != 200:
                        module.refusals.append("HTTP %d %s" % (response.status_code, response.text.strip()[:200]))
                    return response
                except (http.client.HTTPException, OSError) as e:
                    self._conn.close()
                    self._conn = None
                    if attempt:
                        module.refusals.append("post failed: %r" % (e,))
                        raise

    module = types.ModuleType("requests")
    module.session = module.Session = Session
    module.refusals = []  # what went wrong, for the report
    return module


def child_original(spec):
    import logging

    sys.modules.setdefault("cjson", _standin_cjson())
    try:
        import requests

        post_via = "requests %s" % requests.__version__
    except ImportError:
        sys.modules["requests"] = _standin_requests()
        post_via = "stand-in requests (http.client)"
    errors = []

    class Errors(logging.Handler):
        def emit(self, record):
            errors.append(record.getMessage().strip().split("\n")[-1][:300])

    logging.getLogger().addHandler(Errors(logging.ERROR))
    sys.path.insert(0, spec["original_root"])
    import select
    import types

    import taba.client as client
    import taba.client.api as api
    from taba.common import transport

    # Its transport.Encode() calls time.sleep(0) once per event (to yield to
    # other greenlets). Python 2 did that with a select() of zero timeout;
    # Python 3.11 calls clock_nanosleep(), which sleeps the timer slack (~50
    # us on Linux). So its module gets a time.sleep() that does what Python
    # 2 did; the flush is measured once more unchanged (below).
    unchanged = transport.time
    python2_sleep = types.SimpleNamespace(sleep=lambda s: select.select([], [], [], s), time=time.time)
    transport.time = python2_sleep

    case = spec["case"]
    client.Initialize(spec["client_id"], spec["post_url"], spec["flush_period"])
    engine = api._ENGINE
    result = {"post_via": post_via}
    name = spec["name"]
    if case.startswith(("record", "idle")):
        flushes = [0]
        encode = transport.Encode

        def counted_encode(*args, **kwargs):
            flushes[0] += 1
            return encode(*args, **kwargs)

        transport.Encode = counted_encode  # its flush calls it once per flush
        result.update(time_calls(client, name, spec["threads"], spec["calls"], lambda: flushes[0]))
        client.Stop()  # flushes; its thread ends after its current sleep
        if spec["flush_period"] < 60:
            engine.thread.join(spec["flush_period"] + 60)  # a flush it may be in
    else:
        result["expect"], result["exist"] = {}, []
        for prefix, module_time, suffix in (("", python2_sleep, ""), ("py3_", unchanged, ".py3")):
            transport.time = module_time
            if case == "flush":
                for _ in range(spec["events"]):
                    client.Counter(name + suffix, 1)
                expect, exist = {name + suffix: spec["events"]}, []
            else:
                names = [name + suffix + "." + t for t in ("counter", "percentile", "gauge", "buffer")]
                expect, exist = record_mix(client, names, spec["events"], time.time() + 3600)
            result["expect"].update(expect)
            result["exist"] += exist
            buffered = engine.buffer  # the flush swaps it out; kept for the encode-only figure
            failures, logged = engine.failures, len(errors)
            c0, t0 = time.process_time(), time.perf_counter()
            engine._Flush()
            t1, c1 = time.perf_counter(), time.process_time()
            result[prefix + "flush_ok"] = engine.failures == failures and len(errors) == logged
            result[prefix + "flush_cpu_ms"] = (c1 - c0) * 1e3
            result[prefix + "flush_wall_ms"] = (t1 - t0) * 1e3
            if prefix:
                continue  # the encode-only figure would sleep as long again
            c0 = time.process_time()
            body = transport.Encode(spec["client_id"], buffered)
            c1 = time.process_time()
            result[prefix + "encode_cpu_ms"] = (c1 - c0) * 1e3
            result[prefix + "body_bytes"] = len(body.encode("utf-8"))
        transport.time = unchanged
    result["failures"] = engine.failures
    result["errors"] = errors[:3] + getattr(sys.modules["requests"], "refusals", [])[:3]
    return result


def child_baseline(spec):
    """The loop's own cost: the same calls to an empty function."""
    import types

    def Counter(name, value=1):
        pass

    return time_calls(types.SimpleNamespace(Counter=Counter), spec["name"], 1, spec["calls"])


def child_main(spec):
    run = {"ours": child_ours, "original": child_original, "baseline": child_baseline}[spec["impl"]]
    result = run(spec)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # the original client's flush thread is not a daemon thread


# -- the driver -----------------------------------------------------------------


def load_support():
    """clients/python/tests/support.py (Tabad), loaded by path."""
    path = os.path.join(PACKAGE_ROOT, "tests", "support.py")
    spec = importlib.util.spec_from_file_location("taba_bench_support", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare_original(source, workdir):
    """(root to put on sys.path, note) of a converted copy of the original
    client, or (None, reason)."""
    source = os.path.abspath(source)
    for root in (source, os.path.join(source, "src")):
        if os.path.isfile(os.path.join(root, "taba", "client", "api.py")):
            break
    else:
        return None, "no taba/client/api.py under %s or %s/src" % (source, source)
    dest = os.path.join(workdir, "original")
    shutil.copytree(os.path.join(root, "taba"), os.path.join(dest, "taba"),
                    ignore=shutil.ignore_patterns("*.pyc", "__pycache__", "server", "agent"))
    files = [os.path.join(dest, "taba", "__init__.py")]
    for part in ("client", "common", "handlers"):
        for top, _, names in os.walk(os.path.join(dest, "taba", part)):
            files += [os.path.join(top, n) for n in sorted(names) if n.endswith(".py")]
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from lib2to3 import refactor
    except ImportError as e:
        return None, "lib2to3 is not available to convert its Python 2 code (%s)" % e
    before = {f: open(f, encoding="utf-8").read() for f in files}
    tool = refactor.RefactoringTool(refactor.get_fixers_from_package("lib2to3.fixes"))
    try:
        tool.refactor(files, write=True)
    except Exception as e:  # lib2to3 raises its own parse errors
        return None, "lib2to3 failed: %r" % (e,)
    changed = [os.path.relpath(f, dest) for f in files if open(f, encoding="utf-8").read() != before[f]]
    return dest, "lib2to3 changed %d of %d files (%s)" % (len(changed), len(files), ", ".join(changed) or "none")


def process_cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def run_child(spec, timeout):
    """The child's result dict, or {"error": reason}."""
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "cut off after %d s" % timeout}
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = [l for l in done.stderr.strip().splitlines() if l.strip()][-3:]
    return {"error": "exit %d: %s" % (done.returncode, " | ".join(tail) or "no output")}


def verify(tabad, result, deadline_s=15.0):
    """Adds received (events tabad counted) and missing_tabs."""
    expect = result.get("expect", {})
    deadline = time.monotonic() + deadline_s
    while True:
        received = {n: tabad.day(n)[0] for n in expect}
        missing = [n for n in result.get("exist", []) if tabad.tab(n) is None]
        if (received == expect and not missing) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    result["received"] = sum(received.values())
    result["expected"] = sum(expect.values())
    result["missing_tabs"] = missing


def fmt(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "not measured"
    median = statistics.median(values)
    if len(values) == 1:
        return "%.*f" % (digits, median)
    return "%.*f (%.*f-%.*f)" % (digits, median, digits, min(values), digits, max(values))


def machine():
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return "load average %s, %d CPUs" % (load, os.cpu_count())


def main():
    parser = argparse.ArgumentParser(description="The Python client's record path and flush cost (see the header).")
    parser.add_argument("--tabad", default=os.environ.get("TABAD_PATH") or os.path.join("build", "tabad"))
    parser.add_argument("--original", help="source tree of the original Taba client (Python 2)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3_000_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--thread-calls", type=int, default=375_000)
    parser.add_argument("--idle-calls", type=int, default=500_000)
    parser.add_argument("--flush-events", type=int, default=100_000)
    parser.add_argument("--max-pending", type=int, default=4_000_000)
    parser.add_argument("--max-retry-mb", type=int, default=512)
    parser.add_argument("--child-timeout", type=int, default=300)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(json.loads(args.child))
    for name in ("runs", "calls", "threads", "thread_calls", "idle_calls", "flush_events", "max_pending", "max_retry_mb",
                 "child_timeout"):
        if getattr(args, name) < 1:
            parser.error("--%s takes a positive number" % name.replace("_", "-"))
    if not os.access(args.tabad, os.X_OK):
        parser.error("no tabad at %s (build it, or give --tabad or $TABAD_PATH)" % args.tabad)

    def say(text):
        print("python_client_bench: [%s] %s" % (time.strftime("%H:%M:%S"), text), file=sys.stderr, flush=True)

    support = load_support()
    os.environ["TABAD_PATH"] = os.path.abspath(args.tabad)
    workdir = tempfile.mkdtemp(prefix="taba-python-client-bench-")
    tabad = support.Tabad()
    impls = ["ours"]
    notes = []
    try:
        if args.original:
            original_root, note = prepare_original(args.original, workdir)
            notes.append("original client: " + note)
            if original_root:
                impls.append("original")
        tabad.start()
        start_machine = machine()
        say("tabad pid %d at %s; %s; %s" % (tabad.proc.pid, tabad.url, sys.executable, start_machine))
        for note in notes:
            say(note)
        t = args.threads
        cases = {
            "record1": dict(threads=1, calls=args.calls, flush_period=1),
            "record%d" % t: dict(threads=t, calls=args.thread_calls, flush_period=1),
            "idle1": dict(threads=1, calls=args.idle_calls, flush_period=3600),
            "idle%d" % t: dict(threads=t, calls=max(1, args.idle_calls // t), flush_period=3600),
            "flush": dict(events=args.flush_events, flush_period=3600),
            "mixed": dict(events=args.flush_events, flush_period=3600),
        }
        results = {}  # (impl, case) -> [result]
        for run in range(1, args.runs + 1):
            order = impls if run % 2 else impls[::-1]
            base = {"impl": "baseline", "name": "bench.py.baseline", "calls": args.calls}
            result = run_child(base, args.child_timeout)
            results.setdefault(("baseline", "record1"), []).append(result)
            print("python_client_bench: run=%d impl=baseline ns_per_call=%.1f" % (run, result.get("ns_per_call", float("nan"))), flush=True)
            for case, params in cases.items():
                for impl in order:
                    spec = dict(params, impl=impl, case=case, name="bench.py.%s.%s.r%d" % (impl, case, run),
                                client_id="pybench-" + impl, post_url=tabad.post_url, max_pending=args.max_pending,
                                max_retry_mb=args.max_retry_mb,
                                package_root=PACKAGE_ROOT, original_root=workdir + "/original")
                    spec.setdefault("threads", 1)
                    server0 = process_cpu_s(tabad.proc.pid)
                    result = run_child(spec, args.child_timeout)
                    result["server_cpu_s"] = process_cpu_s(tabad.proc.pid) - server0
                    if "error" not in result:
                        verify(tabad, result)
                    results.setdefault((impl, case), []).append(result)
                    shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items()
                             if k not in ("expect", "exist")}
                    print("python_client_bench: run=%d impl=%s case=%s %s" % (
                        run, impl, case, " ".join("%s=%s" % (k, json.dumps(v).replace(" ", "")) for k, v in shown.items())),
                        flush=True)
        end_machine = machine()
    finally:
        tabad.close()
        shutil.rmtree(workdir, ignore_errors=True)

    def column(impl, case, key, digits=1, scale=1.0):
        rs = [r for r in results.get((impl, case), []) if "error" not in r]
        return fmt([r[key] * scale if key in r else None for r in rs], digits)

    def delivery(impl, case):
        rs = results.get((impl, case), [])
        if not rs or all("error" in r for r in rs):
            return "not measured"
        ok = [r for r in rs if "error" not in r]
        short = [r for r in ok if r["received"] != r["expected"] or r["missing_tabs"]]
        if not short:
            return "all (%d runs)" % len(ok)
        return "short in %d of %d runs (worst %d of %d)" % (
            len(short), len(ok), min(r["received"] for r in short),
            max(r["expected"] for r in short))

    rows = [
        ("Counter(), flush every 1 s: ns per call, 1 thread", "record1", "ns_per_call", 0, 1.0),
        ("  process CPU ns per call", "record1", "cpu_ns_per_call", 0, 1.0),
        ("  flushes begun during the timed loop", "record1", "flushes_in_loop", 0, 1.0),
        ("Counter(), flush every 1 s: ns per call, %d threads" % t, "record%d" % t, "ns_per_call", 0, 1.0),
        ("  process CPU ns per call", "record%d" % t, "cpu_ns_per_call", 0, 1.0),
        ("  flushes begun during the timed loop", "record%d" % t, "flushes_in_loop", 0, 1.0),
        ("Counter(), nothing flushes: ns per call, 1 thread", "idle1", "ns_per_call", 0, 1.0),
        ("Counter(), nothing flushes: ns per call, %d threads" % t, "idle%d" % t, "ns_per_call", 0, 1.0),
        ("  process CPU ns per call", "idle%d" % t, "cpu_ns_per_call", 0, 1.0),
        ("flush of %d Counter events: process CPU ms" % args.flush_events, "flush", "flush_cpu_ms", 0, 1.0),
        ("flush of %d Counter events: wall ms" % args.flush_events, "flush", "flush_wall_ms", 0, 1.0),
        ("  of which encoding alone: CPU ms", "flush", "encode_cpu_ms", 0, 1.0),
        ("  body MB", "flush", "body_bytes", 2, 1e-6),
        ("flush of %d mixed events: process CPU ms" % args.flush_events, "mixed", "flush_cpu_ms", 0, 1.0),
        ("flush of %d mixed events: wall ms" % args.flush_events, "mixed", "flush_wall_ms", 0, 1.0),
        ("  of which encoding alone: CPU ms", "mixed", "encode_cpu_ms", 0, 1.0),
        ("  body MB", "mixed", "body_bytes", 2, 1e-6),
        ("original unchanged on Python 3 (time.sleep(0) sleeps):", None, None, 0, 1.0),
        ("  flush of %d Counter events: process CPU ms" % args.flush_events, "flush", "py3_flush_cpu_ms", 0, 1.0),
        ("  flush of %d Counter events: wall ms" % args.flush_events, "flush", "py3_flush_wall_ms", 0, 1.0),
        ("  flush of %d mixed events: process CPU ms" % args.flush_events, "mixed", "py3_flush_cpu_ms", 0, 1.0),
        ("  flush of %d mixed events: wall ms" % args.flush_events, "mixed", "py3_flush_wall_ms", 0, 1.0),
    ]
    width = 56
    print()
    print("python_client_bench: medians (min-max) of %d runs; tabad fe+be, embedded store, loopback, same host" % args.runs)
    header = "%-*s %-26s %s" % (width, "", "new client (taba)", "original client" if "original" in impls else "")
    print(header.rstrip())
    print("%-*s %s" % (width, "empty function call in the same loop: ns", column("baseline", "record1", "ns_per_call", 0)))
    for label, case, key, digits, scale in rows:
        if key and key.startswith("py3_"):
            if "original" in impls:
                print("%-*s %-26s %s" % (width, label, "-", column("original", case, key, digits, scale)))
            continue
        if case is None:
            if "original" in impls:
                print(label)
            continue
        line = "%-*s %-26s" % (width, label, column("ours", case, key, digits, scale))
        if "original" in impls:
            line += " " + column("original", case, key, digits, scale)
        print(line.rstrip())
    for case in cases:
        line = "%-*s %-26s" % (width, "events tabad counted, %s" % case, delivery("ours", case))
        if "original" in impls:
            line += " " + delivery("original", case)
        print(line.rstrip())
    dropped = [r.get("dropped", 0) for (impl, _), rs in results.items() if impl == "ours" for r in rs]
    print("python_client_bench: new client: events dropped in all runs: %d (max_pending_events %d, max_retry_bytes %d MiB)" % (
        sum(dropped), args.max_pending, args.max_retry_mb))
    if "original" in impls:
        vias = {r.get("post_via") for (impl, _), rs in results.items() if impl == "original" for r in rs} - {None}
        print("python_client_bench: original client: cjson stand-in (json module); posts via %s" % ", ".join(sorted(vias)))
    for note in notes:
        print("python_client_bench: " + note)
    for (impl, case), rs in sorted(results.items()):
        errors = sorted({r["error"] for r in rs if "error" in r} | {e for r in rs for e in r.get("errors", [])})
        for e in errors:
            print("python_client_bench: %s %s: not measured or failed: %s" % (impl, case, e))
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print("python_client_bench: machine at start: %s; at end: %s; %s, Python %s, commit %s" % (
        start_machine, end_machine, os.uname().nodename, sys.version.split()[0], commit or "unknown"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
