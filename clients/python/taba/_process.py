"""What the clients of one process share: the fork hooks and the final flush
at exit.

os.register_at_fork takes every client's lock before a fork (so no flush is
half-done in the child's copy) and, in the child, gives each client a new
lock, an empty deque and retry queue, zeroed counters and, at its first
event, its own flush thread: what was recorded before the fork is the
parent's to send, once. An atexit handler stops every client, sending what
is left within its stop_timeout.
"""

import atexit
import logging
import os
import threading
import weakref

LOG = logging.getLogger("taba.client")

# Every client of this process. A fork holds _registry_lock, then each
# client's lock.
_clients = weakref.WeakSet()
_registry_lock = threading.Lock()


def register(client):
    with _registry_lock:
        _clients.add(client)


def _before_fork():
    _registry_lock.acquire()
    for client in _clients:
        client._lock.acquire()


def _after_fork_in_parent():
    for client in _clients:
        client._lock.release()
    _registry_lock.release()


def _after_fork_in_child():
    global _registry_lock
    _registry_lock = threading.Lock()
    for client in _clients:
        client.after_fork_in_child()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def _stop_all_at_exit():
    with _registry_lock:
        clients = list(_clients)
    for client in clients:
        try:
            client.stop()
        except Exception:  # exiting: nothing to raise into
            LOG.exception("taba: final flush at exit failed")


atexit.register(_stop_all_at_exit)
