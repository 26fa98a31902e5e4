"""What the clients of one process share: the fork hooks and the final flush
at exit.

os.register_at_fork takes every client's lock before a fork (so no flush is
half-done in the child's copy) and, in the child, gives each client a new
lock, an empty deque and retry queue, zeroed counters and, at its first
event, its own flush thread: what was recorded before the fork is the
parent's to send, once. An atexit handler stops every client, sending what
is left within its stop_timeout; in a child forked by multiprocessing, which
exits past atexit, a multiprocessing finalizer does the same.
"""

import atexit
import logging
import os
import sys
import threading
import weakref

LOG = logging.getLogger("taba.client")

# Every client of this process. A fork holds _registry_lock, then each
# client's lock. Reentrant, as the clients' locks: a signal handler may
# record (and make the first client) while its thread holds it.
_clients = weakref.WeakSet()
_registry_lock = threading.RLock()


def register(client):
    with _registry_lock:
        _clients.add(client)


def _before_fork():
    _finalize_multiprocessing_children()
    _registry_lock.acquire()
    for client in _clients:
        client._lock.acquire()


def _after_fork_in_parent():
    for client in _clients:
        client._lock.release()
    _registry_lock.release()


def _after_fork_in_child():
    global _registry_lock
    _registry_lock = threading.RLock()
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


# A child that multiprocessing forks ends with os._exit, past atexit, after
# running multiprocessing's own finalizers (which it clears at the start of
# the child, then calls its after-fork hooks). So when multiprocessing is in
# use, each such child gets a finalizer that stops its clients.
class _Token:
    pass


_token = _Token()  # register_after_fork keeps it weakly: it must stay alive
_registered_with_multiprocessing = False


def _finalize_multiprocessing_children():
    global _registered_with_multiprocessing
    util = sys.modules.get("multiprocessing.util")
    if util is None or _registered_with_multiprocessing:
        return
    _registered_with_multiprocessing = True
    util.register_after_fork(_token, _in_multiprocessing_child)


def _in_multiprocessing_child(_):
    sys.modules["multiprocessing.util"].Finalize(None, _stop_all_at_exit, exitpriority=10)
