"""One client: the record path, the flush thread, the bounds, the counters,
and what happens at a fork and at exit.

Record path: a recording call validates the name (once per distinct name),
reads the clock and appends one tuple to a list under a lock held for a few
hundred nanoseconds. It never does I/O and never raises. The flush thread
swaps the list for an empty one every flush_period, encodes it (_encode.py)
and sends the bodies (_sender.py).

Every event offered to a recording call ends in exactly one counter of
status() at any moment: recorded events are pending (not yet encoded), in
the retry queue, sent, or dropped (conflict, rejected, retry overflow,
unsent); refused ones are dropped_invalid or dropped_full. (An event recorded
after Stop() is recorded and dropped_unsent at once.)
All counters change under one lock, so a status() is a consistent snapshot.

Fork: os.register_at_fork takes every client's lock before a fork and, in
the child, gives each client a new lock, an empty buffer and retry queue,
zeroed counters and (at its next call) a new flush thread: what was recorded
before the fork is the parent's to send, once.
"""

import atexit
import logging
import os
import threading
import time
import urllib.parse
import weakref

from . import _encode
from ._sender import Sender

LOG = logging.getLogger("taba.client")

FLUSH_RETRY_PAUSE = 0.1  # seconds between tries of a failing receiver in Flush()
LOG_INTERVAL = 10.0  # at most one message about refused events per interval
MAX_CACHED_NAMES = 100_000  # valid names remembered, so each is checked once

# Every client of this process, for the fork handlers and the final flush at
# exit. A fork holds _registry_lock and then each client's lock.
_clients = weakref.WeakSet()
_registry_lock = threading.Lock()


class Stats:
    """The counters of status(); changed under the client's lock."""

    def __init__(self):
        self.recorded = 0
        self.sent = 0
        self.dropped_invalid = 0
        self.dropped_full = 0
        self.dropped_conflict = 0
        self.dropped_rejected = 0
        self.dropped_retry_overflow = 0
        self.dropped_unsent = 0
        self.posts_ok = 0
        self.posts_failed = 0
        self.pending_events = 0
        self.retry_events = 0
        self.retry_bytes = 0
        self.retry_bodies = 0
        self.last_error = ""
        self.last_invalid = ""


def check_url(url):
    """(SplitResult, '') or (None, reason)."""
    if not isinstance(url, str):
        return None, "event_post_url is a %s, not a str" % type(url).__name__
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # raises ValueError on a bad port
    except ValueError as e:
        return None, 'event_post_url "%s": %s' % (_encode.quote_for_error(url), e)
    if parts.scheme not in ("http", "https"):
        return None, 'event_post_url "%s": the scheme must be http or https' % _encode.quote_for_error(url)
    if not parts.hostname:
        return None, 'event_post_url "%s": no host' % _encode.quote_for_error(url)
    return parts, ""


class Client:
    def __init__(
        self,
        client_id,
        event_post_url,
        flush_period=1.0,
        max_pending_events=500_000,
        max_pending_bytes=64 << 20,
        max_retry_bytes=64 << 20,
        max_body_bytes=4 << 20,
        timeout=5.0,
        stop_timeout=5.0,
        token=None,
        compress=False,
    ):
        """Raises ValueError naming the first invalid argument."""
        why = _encode.check_identifier(client_id)
        if why:
            raise ValueError('client ID "%s" %s' % (_encode.quote_for_error(client_id), why))
        url, why = check_url(event_post_url)
        if why:
            raise ValueError(why)
        for name, value, least in (
            ("flush_period", flush_period, 0.001),
            ("timeout", timeout, 0.001),
            ("stop_timeout", stop_timeout, 0.0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= least:
                raise ValueError("%s must be a number of seconds >= %g, not %r" % (name, least, value))
        for name, value in (
            ("max_pending_events", max_pending_events),
            ("max_pending_bytes", max_pending_bytes),
            ("max_retry_bytes", max_retry_bytes),
            ("max_body_bytes", max_body_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError("%s must be a positive int, not %r" % (name, value))
        if token is not None and (not isinstance(token, str) or not token.isprintable()):
            raise ValueError("token must be a printable str")

        self.client_id = client_id
        self.event_post_url = event_post_url
        self._period = float(flush_period)
        self._max_events = max_pending_events
        self._max_bytes = max_pending_bytes
        self._stop_timeout = float(stop_timeout)
        self._timeout = float(timeout)
        self._stats = Stats()
        self._init_sync()
        self._encoder = _encode.Encoder(client_id, max_body_bytes)
        self._sender = Sender(url, self._stats, self._lock, max_retry_bytes, self._timeout, token, compress)
        self._names = set()  # names already found valid
        self._log_at = 0.0
        self._log_skipped = 0
        with _registry_lock:
            _clients.add(self)
        self._ensure_thread()

    def _init_sync(self):
        """The lock, the buffer and the flush thread's state (also after a
        fork, in the child)."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._events = []  # (name, type, kind, value, expiry, ts)
        self._buffered = 0  # events in self._events (the bound)
        self._buffered_bytes = 0  # their text payload bytes
        self._closed = False  # Stop() has taken the last events
        self._stopping = False
        self._stopped = False
        self._thread = None
        self._flush_wanted = 0
        self._flush_done = 0
        self._flush_ok = True
        self._flush_deadline = 0.0

    # -- the record path ------------------------------------------------------

    def refuse(self, name, why):
        """Counts one event refused at the call; `why` names the problem."""
        reason = 'name "%s": %s' % (_encode.quote_for_error(name), why)
        with self._lock:
            self._stats.dropped_invalid += 1
            self._stats.last_invalid = reason
        self._log(reason)

    def _log(self, reason):
        now = time.monotonic()
        if now < self._log_at:
            self._log_skipped += 1
            return
        skipped, self._log_skipped = self._log_skipped, 0
        self._log_at = now + LOG_INTERVAL
        if skipped:
            LOG.warning("taba: event dropped: %s (and %d more since the last message)", reason, skipped)
        else:
            LOG.warning("taba: event dropped: %s", reason)

    def add(self, name, type_name, kind, value, expiry, text_bytes):
        """Buffers one event whose payload the caller checked. text_bytes:
        the UTF-8 size of a text payload (0 for numbers)."""
        if name not in self._names:
            why = _encode.check_identifier(name)
            if why:
                return self.refuse(name, why)
            if len(self._names) >= MAX_CACHED_NAMES:
                self._names.clear()
            self._names.add(name)
        ts = time.time()
        with self._lock:
            stats = self._stats
            if self._closed:  # after Stop(): accepted, and never to be sent
                stats.recorded += 1
                stats.dropped_unsent += 1
                return
            if self._buffered >= self._max_events or (
                text_bytes and self._buffered_bytes + text_bytes > self._max_bytes
            ):
                stats.dropped_full += 1
                return
            self._events.append((name, type_name, kind, value, expiry, ts))
            self._buffered += 1
            self._buffered_bytes += text_bytes
            stats.recorded += 1
            stats.pending_events += 1
            if self._thread is not None:
                return
        self._ensure_thread()  # the first event in a forked child

    # -- the flush thread -----------------------------------------------------

    def _ensure_thread(self):
        with self._lock:
            if self._thread is not None or self._stopped:
                return
            self._thread = threading.Thread(target=self._run, name="taba-client-flush", daemon=True)
            thread = self._thread
        thread.start()

    def _collect(self, close):
        with self._lock:
            events, self._events = self._events, []
            self._buffered = self._buffered_bytes = 0
            if close:
                self._closed = True
        if not events:
            return
        bodies, conflicts, note = self._encoder.encode(events)
        with self._lock:
            self._stats.pending_events -= len(events)
            if conflicts:
                self._stats.dropped_conflict += conflicts
                self._stats.last_invalid = note
            for body in bodies:
                self._sender.enqueue_locked(body)

    def _send_until(self, deadline):
        while True:
            if self._sender.send(deadline):
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            time.sleep(min(FLUSH_RETRY_PAUSE, deadline - now))

    def _run(self):
        next_tick = time.monotonic() + self._period
        while True:
            with self._wake:
                while not (self._stopping or self._flush_wanted > self._flush_done):
                    remaining = next_tick - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                final = self._stopping
                serving = self._flush_wanted
                explicit = final or serving > self._flush_done
                deadline = time.monotonic() + self._stop_timeout if final else self._flush_deadline
                self._flush_deadline = 0.0
            all_sent = False
            try:
                self._collect(final)
                if explicit:
                    all_sent = self._send_until(deadline)
                else:
                    # A tick sends while the receiver takes bodies, for about
                    # one period (or one request timeout), and skips a
                    # receiver that is backing off.
                    now = time.monotonic()
                    if now >= self._sender.retry_at:
                        self._sender.send(now + max(self._period, self._timeout))
                    all_sent = self._sender.empty()
                if final:
                    self._sender.drop_all()
                    self._sender.close()
            except Exception as e:  # a bug here must not end the thread silently
                LOG.exception("taba: flush failed")
                with self._lock:
                    self._stats.last_error = "flush failed: %r" % (e,)
            with self._wake:
                if explicit:
                    self._flush_done = serving
                    self._flush_ok = all_sent
                    self._wake.notify_all()
                if final:
                    self._stopped = True
                    self._wake.notify_all()
                    return
            next_tick = time.monotonic() + self._period

    # -- flush, stop, status --------------------------------------------------

    def flush(self, timeout):
        """Ships everything recorded before the call; True when all of it
        (and every older body) was acknowledged within `timeout` seconds."""
        self._ensure_thread()
        with self._wake:
            if self._stopped or self._stopping:
                self._wake.wait_for(lambda: self._stopped)
                return self._flush_ok
            self._flush_wanted += 1
            ticket = self._flush_wanted
            deadline = time.monotonic() + max(0.0, timeout)
            self._flush_deadline = max(self._flush_deadline, deadline)
            self._wake.notify_all()
            # One POST may run past the deadline by up to its own timeout.
            give_up = deadline + self._timeout + 1.0
            served = self._wake.wait_for(
                lambda: self._flush_done >= ticket or self._stopped, max(0.0, give_up - time.monotonic())
            )
            return bool(served) and self._flush_done >= ticket and self._flush_ok

    def stop(self):
        """A final flush bounded by stop_timeout, then the thread ends.
        Idempotent; later events count as dropped_unsent."""
        self._ensure_thread()
        with self._wake:
            if not (self._stopped or self._stopping):
                self._stopping = True
                self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def status(self):
        with self._lock:
            s = dict(vars(self._stats))
            s["state"] = "stopped" if self._stopped else "stopping" if self._stopping else "running"
        s["client_id"] = self.client_id
        s["event_post_url"] = self.event_post_url
        return s

    # -- fork -----------------------------------------------------------------

    def _after_fork_in_child(self):
        was_running = not (self._stopping or self._stopped)
        self._init_sync()
        self._sender.reset_after_fork(self._lock)
        self._log_at = 0.0
        self._log_skipped = 0
        if was_running:
            self._stats.__init__()
        else:  # the parent's stopped client stays stopped in the child
            self._closed = self._stopped = True


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
        client._after_fork_in_child()


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
