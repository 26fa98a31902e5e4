"""`pip install ./clients/python` works without a network, in a new virtual
environment, and the installed package delivers events."""

import os
import subprocess
import sys
import tempfile
import unittest

from .support import PACKAGE_ROOT, Tabad


class Install(unittest.TestCase):
    def test_pip_installs_the_package_offline_into_a_venv(self):
        with tempfile.TemporaryDirectory(prefix="taba-venv-") as tmp:
            venv = os.path.join(tmp, "venv")
            subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
            python = os.path.join(venv, "bin", "python")
            env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
            env.pop("PYTHONPATH", None)
            done = subprocess.run([python, "-m", "pip", "install", PACKAGE_ROOT], env=env, capture_output=True,
                                  text=True, timeout=120)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            server = Tabad().start()
            try:
                code = ("import sys, taba\n"
                        "from taba import client\n"
                        "assert taba.__file__.startswith(sys.prefix), taba.__file__\n"
                        "client.Initialize('py-installed', sys.argv[1])\n"
                        "client.Counter('installed.count', 5)\n"
                        "print(taba.__version__)\n")
                done = subprocess.run([python, "-c", code, server.post_url], env=env, cwd=tmp, capture_output=True,
                                      text=True, timeout=60)
                self.assertEqual(done.returncode, 0, done.stderr)
                self.assertRegex(done.stdout, r"^\d+\.\d+\.\d+\n$")
                self.assertEqual(server.day("installed.count"), (1, 5))
            finally:
                server.close()


if __name__ == "__main__":
    unittest.main()
