"""The Python client writes the same bytes as the C++ client's encoder for the
same events ($TABA_CLIENT_ENCODE_TOOL runs the C++ encoder,
tests/python/client_encode_tool.cpp), and the body it POSTs is that
encoding."""

import http.server
import math
import os
import random
import re
import struct
import subprocess
import threading
import unittest

from taba import _encode
from taba import client
from taba._encode import KIND_NUMBER, KIND_NUMBER_EXPIRY, KIND_RAW, KIND_TEXT, KIND_TEXT_EXPIRY

KIND_NAMES = {
    KIND_NUMBER: "number",
    KIND_TEXT: "text",
    KIND_NUMBER_EXPIRY: "number_expiry",
    KIND_TEXT_EXPIRY: "text_expiry",
    KIND_RAW: "raw",
}


def cpp_encode(client_id, max_body_bytes, events):
    """The C++ encoder's bodies [(bytes, events)] and conflict count."""
    lines = []
    for name, type_name, kind, value, expiry, ts, _ in events:
        number = value if kind in (KIND_NUMBER, KIND_NUMBER_EXPIRY) else 0.0
        text = value if kind in (KIND_TEXT, KIND_TEXT_EXPIRY, KIND_RAW) else ""
        lines.append("\t".join([name, type_name, KIND_NAMES[kind], repr(ts), repr(number),
                                repr(expiry if expiry is not None else 0.0), text.encode("utf-8").hex()]))
    tool = os.environ["TABA_CLIENT_ENCODE_TOOL"]
    out = subprocess.run([tool, client_id, str(max_body_bytes)], input=("\n".join(lines) + "\n").encode(),
                         capture_output=True, check=True).stdout
    bodies = []
    while out.startswith(b"body "):
        header, _, out = out.partition(b"\n")
        _, size, count = header.split()
        bodies.append((out[: int(size)], int(count)))
        out = out[int(size):]
    m = re.fullmatch(rb"conflicts (\d+)\n", out)
    assert m, out[:200]
    return bodies, int(m.group(1))


def random_double(rng):
    choice = rng.randrange(8)
    if choice == 0:
        return float(rng.randrange(-1000, 1000))
    if choice == 1:
        return float(10 ** rng.randrange(0, 22)) * rng.choice((1, -1, 3, 7))
    if choice == 2:
        return rng.uniform(-1e6, 1e6)
    if choice == 3:
        return round(rng.uniform(0, 1000), rng.randrange(0, 6))
    if choice == 4:
        return 10.0 ** rng.randrange(-30, 30) * rng.random()
    while True:  # any finite double, subnormals included
        v = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(v):
            return v


def random_text(rng):
    alphabet = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\x01', '\x1f', '\x7f', '\u00fc', '\u20ac',
                '\U0001f600', '\u2028', '\b', '\f', '\r']
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))


def random_events(rng, n):
    names = ["n%d" % i for i in range(40)] + ["a.b:c/d?e@f!g$h(i)j*k+l;m=n-o~p_q"]
    events = []
    for _ in range(n):
        name = rng.choice(names)
        ts = 1796534240 + rng.random() * 100000
        kind_pick = rng.randrange(7)
        if kind_pick <= 1:
            event = (name, rng.choice(("CounterGroup", "PercentileGroup")), KIND_NUMBER, random_double(rng), None)
        elif kind_pick == 2:
            event = (name, "Gauge", KIND_TEXT, random_text(rng), None)
        elif kind_pick == 3:
            event = (name, "ExpiryGauge", KIND_NUMBER_EXPIRY, random_double(rng), ts + rng.random() * 3600)
        elif kind_pick == 4:
            event = (name, "Buffer", KIND_TEXT_EXPIRY, random_text(rng), ts + rng.random() * 3600)
        elif kind_pick == 5:
            event = (name, "Buffer", KIND_TEXT, random_text(rng), None)
        else:
            raw = _encode.json_text(rng.choice([[rng.randrange(10000)], random_text(rng), {"k": random_text(rng)}]))
            event = (name, rng.choice(("TotalsCounter", "Set")), KIND_RAW, raw, None)
        events.append(event + (ts, 0))
    return events


class EncoderIdentity(unittest.TestCase):
    def check_same(self, events, max_body_bytes, client_id="py-client"):
        py_bodies, conflicts, _ = _encode.Encoder(client_id, max_body_bytes).encode(events)
        cpp_bodies, cpp_conflicts = cpp_encode(client_id, max_body_bytes, events)
        self.assertEqual(conflicts, cpp_conflicts)
        self.assertEqual(len(py_bodies), len(cpp_bodies))
        for py, (cpp, count) in zip(py_bodies, cpp_bodies):
            self.assertEqual(py.data, cpp)
            self.assertEqual(py.events, count)
        return py_bodies

    def test_numbers_format_as_cpp_to_chars(self):
        rng = random.Random(7)
        values = [0.0, -0.0, 1.0, 100000.0, 10000.0, 1e21, 1e-7, 0.1, 5e-324, 1.7976931348623157e308,
                  1.2345678901234568e20, 123456.0, 2.5e-5, 0.0001]
        values += [random_double(rng) for _ in range(20000)]
        events = [("n", "CounterGroup", KIND_NUMBER, v, None, 1796534240.5, 0) for v in values]
        self.check_same(events, 1 << 30)

    def test_random_events_of_every_kind(self):
        rng = random.Random(11)
        for round_ in range(6):
            events = random_events(rng, 3000)
            with self.subTest(round=round_):
                bodies = self.check_same(events, 4 << 20)
                self.assertEqual(sum(b.events for b in bodies) + 0, len(events) - self._conflicts(events))

    def test_bodies_are_cut_alike(self):
        rng = random.Random(13)
        events = random_events(rng, 2000)
        bodies = self.check_same(events, 600)
        self.assertGreater(len(bodies), 10)

    def test_the_worked_example(self):
        # Taba's worked example (the same events the original client sends),
        # in the compact form both of tabad's clients write.
        events = [("req_ms", "CounterGroup", KIND_NUMBER, 12.5, None, 1400000000.25, 0),
                  ("req_ms", "CounterGroup", KIND_NUMBER, 3.0, None, 1400000001.5, 0),
                  ("color", "Gauge", KIND_TEXT, "red", None, 1400000002.0, 3)]
        bodies = self.check_same(events, 4 << 20, client_id="web01")
        self.assertEqual(bodies[0].data, b'1\n\nweb01\n\nreq_ms\n["CounterGroup",1400000000.250,"12.5"]\n'
                         b'["CounterGroup",1400000001.500,"3"]\n\ncolor\n["Gauge",1400000002.000,"\\"red\\""]\n\n\n')

    @staticmethod
    def _conflicts(events):
        bound = {}
        return sum(1 for e in events if bound.setdefault(e[0], e[1]) != e[1])


class _Capture(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        _Capture.bodies.append((dict(self.headers), data))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class WireBody(unittest.TestCase):
    def test_the_posted_body_is_the_encoding_of_the_recorded_calls(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            c = client.Client("wire-test", "http://127.0.0.1:%d/post" % server.server_port, flush_period=3600)
            client._client = c
            client.Counter("a", 1)
            client.Counter("a", 2.5)
            client.Percentile("p", 7)
            client.Gauge("g", "Z\u00fcrich/\"x\"")
            client.Gauge("e", 3, expiration=1796534300.25)
            client.Buffer("b", ("msg", 1796534400))
            client.RecordEvent("t", [1500], "TotalsCounter")
            recorded = list(c._queue)
            self.assertTrue(client.Flush(5))
            self.assertEqual(len(_Capture.bodies), 1)
            headers, data = _Capture.bodies[0]
            self.assertRegex(headers["Taba-Batch-Id"], r"\A[0-9a-f]{32}\Z")
            self.assertEqual(headers["Content-Type"], "text/plain; charset=utf-8")
            self.assertEqual(data, cpp_encode("wire-test", 4 << 20, recorded)[0][0][0])
            self.assertIn(b'\ng\n["Gauge",', data)
            self.assertIn(b',"\\"Z\xc3\xbcrich/\\\\\\"x\\\\\\"\\""]\n', data)
            self.assertIn(b',"[3,1796534300.25]"]\n', data)
            self.assertIn(b',"[\\"msg\\",1796534400]"]\n', data)
            self.assertIn(b',"[1500]"]\n', data)
            self.assertEqual(client.GetStatus()["sent"], 7)
            c.stop()
        finally:
            client._client = None
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    unittest.main()
