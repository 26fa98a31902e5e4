"""A client retries a batch only through the address that first (possibly)
received it: an agent deduplicates the batch ids it took, not those another
agent took (docs/python.md, Delivery).

The endpoint is http://localhost:PORT with `localhost` resolving to 127.0.0.1
and ::1, a real tabad agent on each, on the same port. The first address (in
getaddrinfo's order) is the "first agent": a relay there that loses replies,
in front of a real agent. Where /etc/hosts gives localhost one address only,
each test runs again in a private mount namespace (unshare -rm) whose
/etc/hosts gives it both: the system's resolver, real listeners.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

from .support import PACKAGE_ROOT, LosingRelay, Tabad, eventually, free_port
from taba import client

IN_NAMESPACE = "TABA_TEST_IN_HOSTS_NAMESPACE"


def localhost_addresses(port):
    """The IP addresses of `localhost`, in the order the client tries them."""
    return [info[4][0] for info in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)]


def _record(c, name, value):
    c.add(name, "CounterGroup", 0, float(value), None, 0)


def agent_posts(agent):
    """The agent's /status "posts" counters: accepted (duplicates too), events_spooled, duplicates..."""
    return agent.get_json("/status?format=json")["posts"]


def drained(agent):
    s = agent.get_json("/status?format=json")
    return s["spool"]["events"] == 0 and s["forwarded"]["in_flight"] == 0


def port_free_on_both():
    """A port free on 127.0.0.1 and on ::1 a moment ago."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET6) as s:
            try:
                s.bind(("::1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


class PinnedRetries(unittest.TestCase):
    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for cleanup in reversed(self.cleanups):
            cleanup()

    def runs_here(self):
        """True when localhost has both addresses here; else runs this test
        again in a namespace where it does, checks that it passed, and
        returns False."""
        addresses = set(localhost_addresses(80))
        if {"127.0.0.1", "::1"} <= addresses:
            return True
        if os.environ.get(IN_NAMESPACE):
            self.fail("localhost resolves to %s, even with the namespace's /etc/hosts" % sorted(addresses))
        unshare = shutil.which("unshare")
        if unshare is None:
            self.fail("localhost resolves to %s only, and there is no unshare(1) to run this test where it "
                      "resolves to 127.0.0.1 and ::1" % sorted(addresses))
        with tempfile.TemporaryDirectory(prefix="taba-hosts-") as d:
            hosts = os.path.join(d, "hosts")
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n::1 localhost\n")
            env = dict(os.environ)
            env[IN_NAMESPACE] = "1"
            done = subprocess.run(
                [unshare, "-rm", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts, sys.executable,
                 "-m", "unittest", "-v", self.id()],
                cwd=PACKAGE_ROOT, env=env, capture_output=True, text=True, timeout=240)
        self.assertEqual(done.returncode, 0, "in a private mount namespace:\n" + done.stdout + done.stderr)
        return False

    def start(self, process):
        self.cleanups.append(process.close)
        return process.start()

    def two_agents(self):
        """(fe, agent_a, relay, agent_b, port, first): the relay at the first
        address of localhost:port loses every reply of agent_a behind it;
        agent_b listens at the second address, same port."""
        fe = self.start(Tabad())
        port = port_free_on_both()
        first, second = localhost_addresses(port)[:2]
        agent_a = self.start(Tabad(agent_for=fe))
        relay = LosingRelay(agent_a.port, lose=1_000_000, host=first, port=port)
        self.cleanups.append(lambda: relay.close())
        agent_b = self.start(Tabad(agent_for=fe, host=second, port=port))
        return fe, agent_a, relay, agent_b, port, first

    def body_lost_at_first_address(self, c, agent_a):
        for _ in range(100):
            _record(c, "pin.count", 1)
        self.assertFalse(c.flush(0.3))  # the relay passes the body on and loses the reply
        self.assertTrue(eventually(lambda: agent_posts(agent_a)["events_spooled"] == 100))
        self.assertGreaterEqual(c.status()["posts_failed"], 1)

    def test_a_client_retries_a_batch_only_through_the_agent_that_first_received_it(self):
        if not self.runs_here():
            return
        fe, agent_a, relay, agent_b, port, first = self.two_agents()
        c = client.Client("py-pin", "http://localhost:%d/post" % port, flush_period=3600, timeout=1.0)
        self.cleanups.append(c.stop)
        self.body_lost_at_first_address(c, agent_a)

        # The first agent goes down (after forwarding what it spooled, so
        # that it remembers the batch id when it comes back): its address
        # refuses connections. The retries go there only, never to the
        # other agent.
        self.assertTrue(eventually(lambda: drained(agent_a)))
        relay.close()
        agent_a.stop(signal.SIGKILL)
        failed_before = c.status()["posts_failed"]
        self.assertFalse(c.flush(1.5))
        s = c.status()
        self.assertGreaterEqual(s["posts_failed"], failed_before + 3)
        self.assertIn("refused", s["last_error"])
        address = "[%s]:%d" % (first, port) if ":" in first else "%s:%d" % (first, port)
        self.assertIn(" at " + address, s["last_error"])
        self.assertEqual(s["repinned"], 0)
        self.assertEqual(agent_posts(agent_b)["accepted"], 0)

        # It comes back: the retry reaches it, it knows the batch id.
        agent_a.start()
        relay = LosingRelay(agent_a.port, lose=0, host=first, port=port)
        self.cleanups.append(lambda: relay.close())
        self.assertTrue(c.flush(10))
        s = c.status()
        self.assertEqual((s["sent"], s["retry_events"], s["repinned"]), (100, 0, 0))
        self.assertEqual(agent_posts(agent_a)["duplicates"], 1)
        self.assertEqual(agent_posts(agent_b)["accepted"], 0)
        self.assertTrue(eventually(lambda: drained(agent_a) and fe.day("pin.count") == (100, 100), timeout=15))

    def test_past_retry_pin_timeout_a_batch_goes_to_another_agent_and_is_counted_repinned(self):
        if not self.runs_here():
            return
        fe, agent_a, relay, agent_b, port, first = self.two_agents()
        c = client.Client("py-repin", "http://localhost:%d/post" % port, flush_period=3600, timeout=1.0,
                          retry_pin_timeout=1.0)
        self.cleanups.append(c.stop)
        self.body_lost_at_first_address(c, agent_a)
        relay.close()  # the first agent's address refuses; the agent forwards what it took

        self.assertTrue(c.flush(10))
        s = c.status()
        self.assertEqual((s["sent"], s["retry_events"], s["repinned"]), (100, 0, 1))
        self.assertIn("may be counted twice", s["last_error"])
        address = "[%s]:%d" % (first, port) if ":" in first else "%s:%d" % (first, port)
        self.assertIn("pinned to " + address, s["last_error"])
        self.assertEqual(agent_posts(agent_b)["accepted"], 1)
        # The duplicate the counter warns of: both agents forwarded the body.
        self.assertTrue(eventually(lambda: fe.day("pin.count") == (200, 200), timeout=15))


if __name__ == "__main__":
    unittest.main()
