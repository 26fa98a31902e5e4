"""Taba instrumentation client for Python 3: `from taba import client`
(taba/client.py; docs/python.md)."""

__version__ = "0.1.0"
