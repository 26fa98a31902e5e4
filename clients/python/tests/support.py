"""What the Python client's tests share: real tabad processes on free
loopback ports, queries of their aggregates, and a relay that loses replies.

$TABAD_PATH names the tabad binary (ctest sets it, tests/python/CMakeLists.txt).
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)  # clients/python: `import taba` from the source


def tabad_path():
    path = os.environ.get("TABAD_PATH")
    if not path:
        raise RuntimeError("set TABAD_PATH to the tabad binary (ctest does)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(predicate, timeout=10.0, step=0.05):
    """Polls until predicate() is true or timeout seconds pass; its last
    answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _die_with_parent():
    # PR_SET_PDEATHSIG: the server dies with the test process.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _host_port(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


class Tabad:
    """A tabad fe+be with the embedded store in a temporary directory, or,
    with agent_for (a Tabad), an agent forwarding to that server. It listens
    on host (an IP address) at port (a free one if not given)."""

    def __init__(self, port=None, agent_for=None, host="127.0.0.1"):
        self.dir = tempfile.mkdtemp(prefix="taba-pytest-")
        self.host = host
        self.port = port or free_port()
        self.proc = None
        config = os.path.join(self.dir, "taba.toml")
        with open(config, "w") as f:
            if agent_for is None:
                f.write("[server]\nself_tabs_interval_s = 0\n")
            else:
                f.write('[server]\nroles = ["agent"]\nself_tabs_interval_s = 0\n'
                        '[agent]\nendpoints = ["127.0.0.1:%d"]\nbackoff_max_ms = 1000\n' % agent_for.port)
        self.config = config

    @property
    def url(self):
        return "http://" + _host_port(self.host, self.port)

    @property
    def post_url(self):
        return self.url + "/post"

    def start(self):
        log = open(os.path.join(self.dir, "tabad.log"), "ab")
        self.proc = subprocess.Popen(
            [tabad_path(), "--listen", _host_port(self.host, self.port), "--data-dir", os.path.join(self.dir, "data"),
             "--config", self.config],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent)
        log.close()
        if not eventually(self._ready, timeout=20):
            raise RuntimeError("tabad did not become ready:\n" + self.log_tail())
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("tabad exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self):
        self.stop(signal.SIGKILL)
        if not os.environ.get("TABA_TEST_KEEP_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "tabad.log"), "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def get_json(self, path):
        request = urllib.request.Request(self.url + path, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())

    def tab(self, name, client=None):
        """The JSON render of one name (None when it has no data)."""
        query = "/tabs?name=" + urllib.request.quote(name, safe="")
        if client:
            query += "&client=" + urllib.request.quote(client, safe="")
        return self.get_json(query).get(name)

    def day(self, name, client=None):
        """(count, total) of a CounterGroup or PercentileGroup over 1d."""
        render = self.tab(name, client)
        if render is None:
            return (0, 0)
        return (render["1d"]["count"], render["1d"]["total"])

    def clients(self):
        return self.get_json("/clients")

    def post(self, body, headers=None):
        request = urllib.request.Request(self.post_url, data=body.encode(), method="POST", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


class LosingRelay:
    """A TCP relay in front of a server (at 127.0.0.1:target_port) that
    loses the replies to the first `lose` requests: it reads each request
    whole, forwards it, reads the reply, and closes the client's connection
    without passing it on, as when a 200 is lost on the way back. It
    listens on host (an IP address) at port (a free one if 0)."""

    def __init__(self, target_port, lose, host="127.0.0.1", port=0):
        self.target_port = target_port
        self.lose = lose
        self.relayed = 0
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def post_url(self):
        return "http://127.0.0.1:%d/post" % self.port

    def close(self):
        """Stops listening: new connections are refused (a shutdown wakes
        the accepting thread; a close alone would leave it listening)."""
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    @staticmethod
    def _read_message(sock):
        """One HTTP message with a Content-Length body, or None at EOF."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return head + b"\r\n\r\n" + rest

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn, socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
            while True:
                request = self._read_message(conn)
                if request is None:
                    return
                upstream.sendall(request)
                reply = self._read_message(upstream)
                if reply is None:
                    return
                self.relayed += 1
                if self.relayed <= self.lose:
                    return  # the reply is lost: the client sees its connection close
                conn.sendall(reply)


def run_python(code, env=None, timeout=60):
    """Runs `code` in a new interpreter that imports taba from the source;
    returns the CompletedProcess (stdout and stderr as text)."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + environment.get("PYTHONPATH", "")
    environment.update(env or {})
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                          timeout=timeout)
