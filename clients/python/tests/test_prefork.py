"""The client under a real pre-fork server: gunicorn (Debian's
python3-gunicorn) with --preload, so that the client starts and records in
the master before the workers are forked, as services commonly run."""

import os
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.request

from .support import PACKAGE_ROOT, Tabad, eventually, free_port

APP = '''
import os
from taba import client

client.Initialize("py-gunicorn", os.environ["URL"], flush_period=0.2)
client.Counter("gunicorn.master")  # recorded in the master, before the fork


def app(environ, start_response):
    client.Counter("gunicorn.requests")
    client.Percentile("gunicorn.pid", os.getpid())
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


class Gunicorn(unittest.TestCase):
    def test_preloaded_workers_each_deliver_exactly_once(self):
        server = Tabad().start()
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="taba-gunicorn-") as tmp:
            with open(os.path.join(tmp, "taba_test_app.py"), "w") as f:
                f.write(APP)
            env = dict(os.environ, URL=server.post_url,
                       PYTHONPATH=os.pathsep.join([tmp, PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")]))
            proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--preload", "--workers", "3", "--bind", "127.0.0.1:%d" % port,
                 "--graceful-timeout", "10", "taba_test_app:app"],
                cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                self.assertTrue(eventually(lambda: _get(port) is not None, timeout=20), "gunicorn did not start")
                pids = {_get(port) for _ in range(299)}
                pids.discard(None)
                self.assertTrue(pids and proc.pid not in pids, pids)  # served by forked workers
                proc.send_signal(signal.SIGTERM)  # graceful: workers and master exit normally
                output = proc.communicate(timeout=30)[0].decode("utf-8", "replace")
                self.assertEqual(proc.returncode, 0, output)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            try:
                # Every request once (the first probe included), the master's
                # event once, not once per worker.
                self.assertEqual(server.day("gunicorn.requests"), (300, 300))
                self.assertEqual(server.day("gunicorn.master"), (1, 1))
                self.assertEqual(server.day("gunicorn.pid")[0], 300)
            finally:
                server.close()


def _get(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
            return int(r.read())
    except OSError:
        return None


if __name__ == "__main__":
    unittest.main()
