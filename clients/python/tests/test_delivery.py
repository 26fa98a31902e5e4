"""The Python client against real tabad processes: exact aggregates through
threads, failures of the receiver, lost replies, refused blocks, the bounds,
Stop() and the final flush at exit."""

import asyncio
import json
import socket
import threading
import time
import tracemalloc
import unittest

from .support import LosingRelay, Tabad, eventually, free_port, run_python
from taba import _engine, client
from taba.handlers.tab_type import TabType

SERVER = None


def setUpModule():
    global SERVER
    SERVER = Tabad().start()


def tearDownModule():
    SERVER.close()


def accounted(s):
    """Where the accepted events are: each in exactly one place."""
    return (s["sent"] + s["pending_events"] + s["retry_events"] + s["dropped_conflict"] + s["dropped_rejected"]
            + s["dropped_retry_overflow"] + s["dropped_unsent"])


class GlobalClientTest(unittest.TestCase):
    def tearDown(self):
        client.Stop()
        client._client = None


class ReadmeExample(unittest.TestCase):
    def test_tabas_readme_example_runs_verbatim(self):
        # Taba's README, verbatim; "..." stands for the service's own code,
        # here the price. No Initialize, no Stop: the client starts with its
        # defaults (the host name as client ID) and flushes at exit.
        code = ("from taba import client\n"
                "\n"
                "wincpm = 1.32\n"
                "\n"
                "client.Counter('bids_won', 1)\n"
                "client.Counter('winning_bid_price', wincpm)\n")
        env = {"TABA_EVENT_POST_URL": SERVER.post_url}
        env.pop("TABA_CLIENT_ID", None)
        done = run_python(code, env=env)
        self.assertEqual(done.returncode, 0, done.stderr)
        host = socket.gethostname()
        self.assertEqual(SERVER.day("bids_won", client=host), (1, 1))
        self.assertEqual(SERVER.day("winning_bid_price", client=host), (1, 1.32))
        self.assertIn(host, SERVER.clients())


class Threads(GlobalClientTest):
    def test_eight_threads_record_every_type_and_the_totals_are_exact(self):
        # A bound above what 8 threads can record before the flush thread
        # drains: everything is taken, so the totals are exact.
        client.Initialize(client_id="py-threads", event_post_url=SERVER.post_url, flush_period=0.1,
                          max_pending_events=1_000_000)
        per_thread = 20000

        def work(t):
            for i in range(per_thread):
                client.Counter("thr.count")
                client.Percentile("thr.pct", i % 100)
                if i % 1000 == 0:
                    client.Gauge("thr.gauge.%d" % t, "v%d" % i)
                    client.Buffer("thr.buffer", "t%d-%d" % (t, i))
            client.RecordEvent("thr.totals", [t + 1], TabType.TOTALS_COUNTER)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(client.Flush(20))
        s = client.GetStatus()
        calls = 8 * (2 * per_thread + 2 * (per_thread // 1000) + 1)
        self.assertEqual(s["recorded"], calls)
        self.assertEqual(s["sent"], calls)
        self.assertEqual(accounted(s), calls)
        self.assertEqual(SERVER.day("thr.count"), (8 * per_thread, 8 * per_thread))
        self.assertEqual(SERVER.day("thr.pct"), (8 * per_thread, 8 * (per_thread // 100) * sum(range(100))))
        self.assertEqual(SERVER.tab("thr.gauge.3"), {"v19000": 1})
        self.assertEqual(len(SERVER.tab("thr.buffer")), 8 * (per_thread // 1000))
        self.assertEqual(SERVER.tab("thr.totals")["total"], sum(range(1, 9)))


class ReceiverDown(unittest.TestCase):
    def test_fe_down_for_a_while_then_up_delivers_everything_once(self):
        server = Tabad().start()
        c = client.Client("py-down", server.post_url, flush_period=0.1, timeout=1.0)
        try:
            for _ in range(100):
                _record(c, "down.count", 1)
            self.assertTrue(c.flush(10))
            server.stop()  # down
            for _ in range(300):
                _record(c, "down.count", 2)
                time.sleep(0.002)
            self.assertTrue(eventually(lambda: c.status()["posts_failed"] >= 2, timeout=10))
            s = c.status()
            self.assertEqual(s["sent"], 100)
            self.assertEqual(s["retry_events"] + s["pending_events"], 300)
            self.assertIn("127.0.0.1:%d" % server.port, s["last_error"])
            server.start()  # up again, same port and data
            self.assertTrue(c.flush(20))
            s = c.status()
            self.assertEqual((s["sent"], s["retry_events"], s["pending_events"]), (400, 0, 0))
            self.assertEqual(server.day("down.count"), (400, 700))
        finally:
            c.stop()
            server.close()

    def test_a_lost_200_is_sent_again_with_its_batch_id_and_counted_once(self):
        relay = LosingRelay(SERVER.port, lose=2)
        c = client.Client("py-lost", relay.post_url, flush_period=3600, timeout=2.0)
        try:
            for _ in range(100):
                _record(c, "lost.count", 1)
            self.assertTrue(c.flush(15))
            s = c.status()
            self.assertEqual(s["posts_failed"], 2)  # the lost replies
            self.assertEqual(s["posts_ok"], 1)
            self.assertEqual(s["sent"], 100)
            self.assertEqual(relay.relayed, 3)  # the server saw the body three times...
            self.assertEqual(SERVER.day("lost.count"), (100, 100))  # ...and applied it once
        finally:
            c.stop()
            relay.close()


def _record(c, name, value):
    c.add(name, "CounterGroup", 0, float(value), None, 0)


class ThroughAnAgent(unittest.TestCase):
    def test_through_an_agent_a_lost_200_still_counts_once(self):
        # The usual deployment: the client posts to the agent on its host,
        # which forwards to the fe. The agent deduplicates batch ids.
        agent = Tabad(agent_for=SERVER).start()
        relay = LosingRelay(agent.port, lose=1)
        c = client.Client("py-agent", relay.post_url, flush_period=0.2, timeout=2.0)
        try:
            for i in range(250):
                _record(c, "agent.count", i % 5)
            self.assertTrue(c.flush(15))
            s = c.status()
            self.assertEqual((s["sent"], s["posts_failed"], relay.relayed), (250, 1, 2))
            self.assertTrue(eventually(lambda: SERVER.day("agent.count") == (250, 500), timeout=15))
        finally:
            c.stop()
            relay.close()
            agent.close()


class Refusals(unittest.TestCase):
    def test_a_refused_block_loses_only_its_own_events(self):
        # The server binds "bad.block" to Gauge first: the client's Counter
        # block of that name is refused, the rest of the body applied.
        status, reply = SERVER.post('1\n\nother\n\nbad.block\n["Gauge",1796534240,"\\"x\\""]\n\n\n')
        self.assertEqual(status, 200, reply)
        c = client.Client("py-refused", SERVER.post_url, flush_period=3600)
        try:
            client._client = c
            for _ in range(10):
                client.Counter("good.a")
            for _ in range(5):
                client.Counter("bad.block", 3)
            for _ in range(7):
                client.Counter("good.b", 2)
            client.Counter("has space")  # invalid name: refused at the call
            client.Counter("nan.value", float("nan"))  # not a finite number
            client.Gauge("dict.gauge", {"a": 1})  # Gauge takes no objects
            client.Counter("conf.x")
            client.Gauge("conf.x", "text")  # a second type for one name
            self.assertTrue(client.Flush(10))
            s = client.GetStatus()
            self.assertEqual(s["recorded"], 10 + 5 + 7 + 2)
            self.assertEqual(s["sent"], 10 + 7 + 1)
            self.assertEqual(s["dropped_rejected"], 5)
            self.assertEqual(s["dropped_conflict"], 1)
            self.assertEqual(s["dropped_invalid"], 3)
            self.assertEqual(accounted(s), s["recorded"])
            self.assertIn("1 block(s) refused", s["last_error"])
            self.assertIn("bad.block", s["last_error"])
            self.assertIn('type "Gauge" conflicts with type "CounterGroup"', s["last_invalid"])
            self.assertEqual(SERVER.day("good.a"), (10, 10))
            self.assertEqual(SERVER.day("good.b"), (7, 14))
            self.assertEqual(SERVER.day("conf.x"), (1, 1))
            self.assertEqual(SERVER.tab("bad.block", client="py-refused"), None)
        finally:
            client._client = None
            c.stop()

    def test_a_body_answered_400_loses_only_its_own_block(self):
        # Bodies of one event each: the bad block's bodies are answered 400
        # (every block of them refused) and dropped; the others are applied.
        status, reply = SERVER.post('1\n\nother\n\nbad400.block\n["Gauge",1796534240,"\\"x\\""]\n\n\n')
        self.assertEqual(status, 200, reply)
        c = client.Client("py-400", SERVER.post_url, flush_period=3600, max_body_bytes=50)
        try:
            for name in ("bad400.a", "bad400.block", "bad400.b"):
                for _ in range(3):
                    _record(c, name, 1)
            self.assertTrue(c.flush(10))
            s = c.status()
            self.assertEqual((s["sent"], s["dropped_rejected"], s["posts_ok"], s["posts_failed"]), (6, 3, 6, 3))
            self.assertRegex(s["last_error"], r"^HTTP 400 from http://127\.0\.0\.1:\d+/post: line \d+: type \"CounterGroup\" conflicts")
            self.assertEqual(SERVER.day("bad400.a"), (3, 3))
            self.assertEqual(SERVER.day("bad400.b"), (3, 3))
        finally:
            c.stop()

    def test_invalid_calls_never_raise_and_say_why(self):
        c = client.Client("py-invalid", SERVER.post_url, flush_period=3600)
        try:
            client._client = c
            with self.assertLogs("taba.client", level="WARNING") as logs:
                client.Counter("a b")
                client.Counter(None)
                client.Counter("x" * 257)
                client.Counter("ok", "12")
                client.Percentile("ok", object())
                client.Gauge("ok", b"\xff")
                client.Gauge("ok", "\ud800")
                client.Buffer("ok", ["a", "b"])
                client.RecordEvent("ok", 1, "No Such")
                client.RecordEvent("ok", {1, 2}, "Set")
                client.Gauge("ok", 1, expiration="tomorrow")
                client.Flush(5)  # the flush thread logs
            s = client.GetStatus()
            self.assertEqual(s["dropped_invalid"], 11)
            self.assertEqual(s["recorded"], 0)
            self.assertEqual(len(logs.output), 1)  # rate-limited: one message per 10 s
            self.assertIn('name "a b": contains \' \' (0x20) at byte 1 (and 10 more since the last message)',
                          logs.output[0])
            self.assertIn("expiration 'tomorrow'", s["last_invalid"])
        finally:
            client._client = None
            c.stop()


class Robustness(GlobalClientTest):
    def test_bytes_names_are_refused_and_lose_nothing_else(self):
        client.Initialize(client_id="py-bytesname", event_post_url=SERVER.post_url, flush_period=3600)
        for _ in range(10):
            client.Counter("bytesname.ok")
        client.Counter(b"bytesname.bytes")
        self.assertTrue(client.Flush(10))
        s = client.GetStatus()
        self.assertEqual((s["sent"], s["dropped_invalid"], s["pending_events"]), (10, 1, 0))
        self.assertIn("is a bytes, not a str", s["last_invalid"])
        self.assertEqual(SERVER.day("bytesname.ok"), (10, 10))
        with self.assertRaisesRegex(ValueError, "client ID"):
            client.Initialize(client_id=b"web01", event_post_url=SERVER.post_url)

    def test_a_bad_default_makes_an_inert_client_not_an_exception(self):
        code = ("from taba import client\n"
                "client.Counter('x')\n"
                "client.Gauge('y', 'z')\n"
                "s = client.GetStatus()\n"
                "assert s['state'] == 'inert' and s['dropped_invalid'] == 2, s\n"
                "assert 'client ID \"web 01\"' in s['last_invalid'], s\n"
                "assert client.Flush(1) is False\n"
                "client.Stop()\n")
        done = run_python(code, env={"TABA_CLIENT_ID": "web 01"})
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_events_reaching_a_replaced_client_go_to_its_successor(self):
        client.Initialize(client_id="py-first", event_post_url=SERVER.post_url, flush_period=3600)
        first = client._client
        client.Counter("successor.count")
        client.Initialize(client_id="py-second", event_post_url=SERVER.post_url, flush_period=3600)
        first.add_number("successor.count", "CounterGroup", 1.0)  # a thread still holding the old one
        self.assertTrue(client.Flush(10))
        self.assertEqual(SERVER.day("successor.count", client="py-first"), (1, 1))
        self.assertEqual(SERVER.day("successor.count", client="py-second"), (1, 1))
        self.assertEqual(first.status()["dropped_unsent"], 0)

    def test_an_event_appended_while_its_client_is_replaced_goes_to_the_successor(self):
        # The old client is stopped between the recording call's check and
        # its append (here: inside its clock read).
        client.Initialize(client_id="py-late-old", event_post_url=SERVER.post_url, flush_period=3600)
        old = client._client
        real_now = _engine._now
        replaced = []

        def now_and_replace():
            if not replaced:
                replaced.append(True)
                client.Initialize(client_id="py-late-new", event_post_url=SERVER.post_url, flush_period=3600)
            return real_now()

        _engine._now = now_and_replace
        try:
            old.add_number("late.count", "CounterGroup", 1.0)
        finally:
            _engine._now = real_now
        self.assertTrue(client.Flush(10))
        s_old, s_new = old.status(), client.GetStatus()
        self.assertEqual((s_old["recorded"], s_old["dropped_unsent"]), (0, 0))
        self.assertEqual((s_new["recorded"], s_new["sent"]), (1, 1))
        self.assertEqual(SERVER.day("late.count", client="py-late-new"), (1, 1))

    def test_stop_is_bounded_when_the_receiver_trickles_its_reply(self):
        # A server that answers one byte every 0.3 s: no read times out, and
        # Stop() still returns after stop_timeout + timeout + 1 s at most.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        stop = threading.Event()

        def trickle():
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 100:
                    if stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(0.3)

        threading.Thread(target=trickle, daemon=True).start()
        c = client.Client("py-trickle", "http://127.0.0.1:%d/post" % listener.getsockname()[1], flush_period=3600,
                          timeout=1.0, stop_timeout=0.5)
        try:
            _record(c, "trickle.count", 1)
            start = time.monotonic()
            c.stop()
            self.assertLess(time.monotonic() - start, 2.5 + 2.0)  # the bound, and scheduling slack
        finally:
            stop.set()
            listener.close()

    def test_recording_from_a_signal_handler_does_not_deadlock(self):
        code = ("import os, signal\n"
                "from taba import client\n"
                "client.Initialize('py-signal', os.environ['URL'], flush_period=0.01, max_pending_events=10**7)\n"
                "handled = [0]\n"
                "def handler(signo, frame):\n"
                "    client.Gauge('signal.gauge', 'in handler')\n"
                "    handled[0] += 1\n"
                "signal.signal(signal.SIGALRM, handler)\n"
                "signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)\n"
                "for i in range(200000):\n"
                "    client.Gauge('signal.main', 'v')\n"
                "signal.setitimer(signal.ITIMER_REAL, 0, 0)\n"
                "assert client.Flush(10)\n"
                "s = client.GetStatus()\n"
                "assert s['sent'] == 200000 + handled[0], (s, handled)\n"
                "print(handled[0])\n")
        done = run_python(code, env={"URL": SERVER.post_url}, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertGreater(int(done.stdout), 0)

    def test_a_fork_racing_the_first_event_never_hangs_the_child(self):
        # The first event makes the process-wide client while another thread
        # forks; the child records too. A child that hangs is killed and
        # fails the test.
        code = r"""
import os, random, signal, threading, time
from taba import client
hung = 0
for i in range(300):
    client._client = None
    t = threading.Thread(target=client.Counter, args=('race.first',))
    t.start()
    time.sleep(random.random() * 0.0004)  # fork at any point of the first event
    pid = os.fork()
    if pid == 0:
        client.Counter('race.child')
        os._exit(0)
    t.join()
    deadline = time.monotonic() + 10
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            hung += 1
            break
        time.sleep(0.001)
    client._client.stop()
print(hung)
"""
        done = run_python(code, env={"TABA_EVENT_POST_URL": SERVER.post_url, "TABA_CLIENT_ID": "py-race"},
                          timeout=240)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "0")


class Bounds(unittest.TestCase):
    def test_events_past_max_pending_events_are_counted_exactly(self):
        c = client.Client("py-bound", SERVER.post_url, flush_period=3600, max_pending_events=1000)
        try:
            # The flush thread drains the buffer early, at half the bound;
            # holding the client's lock keeps it from draining, as a busy
            # flush thread would.
            with c._lock:
                for _ in range(5000):
                    _record(c, "bound.count", 1)
                s = c.status()
            self.assertEqual((s["recorded"], s["dropped_full"], s["pending_events"]), (1000, 4000, 1000))
            self.assertTrue(c.flush(10))
            for _ in range(10):  # the bound is free again after a flush
                _record(c, "bound.count", 1)
            self.assertTrue(c.flush(10))
            self.assertEqual(SERVER.day("bound.count"), (1010, 1010))
        finally:
            c.stop()

    def test_text_payload_bytes_are_bounded(self):
        c = client.Client("py-bytes", SERVER.post_url, flush_period=3600, max_pending_bytes=1000)
        try:
            client._client = c
            with c._lock:  # keeps the flush thread from draining early
                for i in range(20):
                    client.Gauge("bytes.gauge", "%0100d" % i)  # 100 bytes each
                client.Counter("bytes.count")  # numbers take no text bytes
                s = c.status()
            self.assertEqual((s["recorded"], s["dropped_full"]), (10 + 1, 10))
        finally:
            client._client = None
            c.stop()

    def test_the_retry_queue_drops_its_oldest_bodies_past_max_retry_bytes(self):
        port = free_port()  # nothing listens
        c = client.Client("py-retry", "http://127.0.0.1:%d/post" % port, flush_period=3600, max_retry_bytes=4000,
                          max_body_bytes=1000, timeout=0.2)
        try:
            for round_ in range(5):
                for i in range(100):
                    _record(c, "retry.%d" % round_, i)
                self.assertFalse(c.flush(0.1))
            s = c.status()
            self.assertGreater(s["dropped_retry_overflow"], 0)
            self.assertLessEqual(s["retry_bytes"], 4000)
            self.assertEqual(accounted(s), 500)
        finally:
            c.stop()
        s = c.status()
        self.assertEqual(s["dropped_unsent"] + s["dropped_retry_overflow"], 500)

    def test_memory_stays_within_the_bound_while_the_receiver_is_away(self):
        c = client.Client("py-memory", "http://127.0.0.1:%d/post" % free_port(), flush_period=3600,
                          max_pending_events=50_000, max_retry_bytes=1 << 20, timeout=0.1)
        tracemalloc.start()
        try:
            client._client = c
            for i in range(400_000):
                client.Counter("memory.count", i)
                if i % 100_000 == 99_999:
                    c.flush(0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            client._client = None
            c.stop()
        s = c.status()
        self.assertEqual(s["recorded"] + s["dropped_full"], 400_000)
        self.assertGreater(s["dropped_full"], 0)
        self.assertGreater(s["dropped_retry_overflow"], 0)
        # 50,000 events of about 200 bytes, plus 1 MiB of bodies and the
        # encoding of one flush: far from the 80 MB 400,000 events would take.
        self.assertLess(peak, 40 << 20)


class StopAndExit(GlobalClientTest):
    def test_stop_flushes_and_later_events_are_counted_unsent(self):
        client.Initialize(client_id="py-stop", event_post_url=SERVER.post_url, flush_period=3600)
        for _ in range(50):
            client.Counter("stop.count")
        client.Stop()
        self.assertEqual(SERVER.day("stop.count"), (50, 50))
        client.Counter("stop.count")
        client.Stop()  # idempotent
        s = client.GetStatus()
        self.assertEqual((s["state"], s["recorded"], s["sent"], s["dropped_unsent"]), ("stopped", 51, 50, 1))
        self.assertEqual(accounted(s), 51)

    def test_atexit_flushes_what_was_recorded(self):
        code = ("import os\nfrom taba import client\n"
                "client.Initialize('py-atexit', os.environ['URL'], flush_period=3600)\n"
                "for _ in range(123): client.Counter('atexit.count')\n")
        done = run_python(code, env={"URL": SERVER.post_url})
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(SERVER.day("atexit.count"), (123, 123))

    def test_exit_with_the_receiver_away_takes_at_most_stop_timeout(self):
        code = ("import os\nfrom taba import client\n"
                "client.Initialize('py-exit', os.environ['URL'], flush_period=3600, stop_timeout=0.5)\n"
                "for _ in range(10): client.Counter('exit.count')\n")
        start = time.monotonic()
        done = run_python(code, env={"URL": "http://127.0.0.1:%d/post" % free_port()})
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertLess(time.monotonic() - start, 8)


class OriginalClientCode(GlobalClientTest):
    def test_code_written_for_the_original_client_runs_unchanged(self):
        # The calls and arguments of the original taba.client, as its users
        # wrote them (positional Initialize, TabType from taba.handlers).
        client.Initialize("py-original", SERVER.post_url, 1, client.ThreadEngine)
        now = time.time()
        client.Counter("orig.counter")
        client.Counter("orig.counter", True)  # counted as 1, as the original server did
        client.Percentile("orig.pct", 12.5)
        client.Gauge("orig.gauge", "v7")
        client.Gauge("orig.expiry", "on", expiration=now + 3600)
        client.Buffer("orig.buffer", ("disk 91% full", now + 600))
        client.RecordEvent("orig.totals", [1500], TabType.TOTALS_COUNTER)
        tab = client.Tab("orig.tab", TabType.PERCENTILE_GROUP)
        tab.Record(5)
        tab.Record()
        client.Tab("orig.tab.counter").Record(3)
        self.assertTrue(client.Flush(10))
        self.assertEqual(SERVER.day("orig.counter"), (2, 2))
        self.assertEqual(SERVER.day("orig.pct"), (1, 12.5))
        self.assertEqual(SERVER.tab("orig.gauge"), {"v7": 1})
        self.assertEqual(SERVER.tab("orig.expiry"), {"on": 1})
        self.assertEqual(SERVER.tab("orig.buffer")[0][0], "disk 91% full")
        self.assertEqual(SERVER.tab("orig.totals")["total"], 1500)
        self.assertEqual(SERVER.day("orig.tab"), (2, 6))
        self.assertEqual(SERVER.day("orig.tab.counter"), (1, 3))
        s = client.GetStatus()
        self.assertEqual((s["sent"], s["dropped_invalid"]), (10, 0))


class Asyncio(GlobalClientTest):
    def test_flush_from_asyncio_does_not_block_the_loop(self):
        port = free_port()
        client.Initialize(client_id="py-async", event_post_url="http://127.0.0.1:%d/post" % port, flush_period=3600,
                          timeout=0.2)

        async def main():
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.ensure_future(ticker())
            client.Counter("async.count")
            ok = await client.FlushAsync(1.0)  # nothing listens: waits the whole second
            task.cancel()
            return ok, ticks

        ok, ticks = asyncio.run(main())
        self.assertFalse(ok)
        self.assertGreater(ticks, 20)  # the loop kept running while the flush waited
        server = Tabad(port=port).start()
        try:
            async def finish():
                return await client.FlushAsync(10)

            self.assertTrue(asyncio.run(finish()))
            self.assertEqual(server.day("async.count"), (1, 1))
        finally:
            server.close()


class Fork(unittest.TestCase):
    def test_a_multiprocessing_child_delivers_without_stop(self):
        # multiprocessing ends a forked child with os._exit, past atexit;
        # the client's finalizer sends what the child recorded.
        code = r"""
import multiprocessing, os
from taba import client
client.Initialize('py-mp', os.environ['URL'], flush_period=3600)
client.Counter('mp.parent')
def work(n):
    for _ in range(n):
        client.Counter('mp.child')
ctx = multiprocessing.get_context('fork')
workers = [ctx.Process(target=work, args=(100,)) for _ in range(3)]
for w in workers:
    w.start()
for w in workers:
    w.join()
print(max(w.exitcode for w in workers))
"""
        done = run_python(code, env={"URL": SERVER.post_url})
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "0")
        self.assertEqual(SERVER.day("mp.child"), (300, 300))
        self.assertEqual(SERVER.day("mp.parent"), (1, 1))


    def test_a_fork_in_the_middle_of_recording_sends_each_event_once(self):
        code = r"""
import json, os, threading, time
from taba import client
client.Initialize('py-fork', os.environ['URL'], flush_period=0.05, max_pending_events=10_000_000)
stop = threading.Event()
background = [0]
def record():
    while not stop.is_set():
        client.Counter('fork.background')
        background[0] += 1
        if background[0] % 100 == 0:
            time.sleep(0.0005)
thread = threading.Thread(target=record)
thread.start()
for _ in range(1000):
    client.Counter('fork.before')
time.sleep(0.2)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    for _ in range(700):
        client.Counter('fork.child')
    for _ in range(300):
        client.Counter('fork.both', 2)
    client.Stop()
    os.write(w, json.dumps(client.GetStatus()).encode())
    os._exit(0)
os.close(w)
for _ in range(500):
    client.Counter('fork.parent')
for _ in range(200):
    client.Counter('fork.both', 2)
time.sleep(0.1)
stop.set()
thread.join()
client.Stop()
child = json.loads(os.read(r, 1 << 20).decode())
os.waitpid(pid, 0)
print(json.dumps({'parent': client.GetStatus(), 'child': child, 'background': background[0]}))
"""
        done = run_python(code, env={"URL": SERVER.post_url})
        self.assertEqual(done.returncode, 0, done.stderr)
        out = json.loads(done.stdout)
        parent, child, background = out["parent"], out["child"], out["background"]
        self.assertGreater(background, 0)
        self.assertEqual(child["recorded"], 1000)  # only what the child recorded
        self.assertEqual(child["sent"], 1000)
        self.assertEqual(parent["recorded"], 1000 + 500 + 200 + background)
        self.assertEqual(parent["sent"], parent["recorded"])
        self.assertEqual(SERVER.day("fork.before"), (1000, 1000))  # not twice
        self.assertEqual(SERVER.day("fork.child"), (700, 700))
        self.assertEqual(SERVER.day("fork.parent"), (500, 500))
        self.assertEqual(SERVER.day("fork.both"), (500, 1000))
        self.assertEqual(SERVER.day("fork.background"), (background, background))


if __name__ == "__main__":
    unittest.main()
