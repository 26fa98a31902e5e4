"""One client: the record path, the flush thread, the bounds and the counters.

Record path. A recording call looks the name up in a dict of names already
found valid, reads the clock and appends one tuple to a deque. It takes no
lock: a deque's append and popleft are atomic, so the flush thread drains
the deque with popleft while threads keep appending. It never does I/O and
never raises; what it refuses is counted (under the lock, off the fast
path), and the reason logged later by the flush thread, rate-limited.

Flush thread. Every flush_period, or early when the deque reaches half of
either bound, it drains the deque, encodes (_encode.py) and sends (_sender.py). It
starts at the first event, so a process that forks before recording (a
pre-fork server's master) has no thread to lose at the fork.

Counters. Every event offered to a recording call ends in exactly one
counter of status() at any moment: an accepted event ("recorded") is in the
deque or being encoded (pending_events), in the retry queue, sent, or
dropped (conflict, rejected, retry overflow, unsent); a refused one is
dropped_invalid or dropped_full. The counters change under one lock, and
status() adds the deque's length under it, so a status is a consistent
snapshot.

Bounds. max_pending_events bounds the deque; with several threads recording
at once it can be passed by at most one event per thread (the length check
and the append are two steps). max_pending_bytes bounds the text payloads
exactly (text events take the lock to reserve their bytes).
"""

import collections
import logging
import sys
import threading
import time
import urllib.parse

from . import _encode, _process
from ._sender import Sender

LOG = logging.getLogger("taba.client")

FLUSH_RETRY_PAUSE = 0.1  # seconds between tries of a failing receiver in Flush()
LOG_INTERVAL = 10.0  # at most one message about dropped events per interval
MAX_CACHED_NAMES = 100_000  # valid names remembered, so each is checked once

_now = time.time


class Stats:
    """The counters of status(); changed under the client's lock. `recorded`
    and `pending_events` leave out the events still in the deque (status()
    adds them)."""

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
        self.repinned = 0


def check_url(url):
    """(SplitResult, '') or (None, reason)."""
    if not isinstance(url, str):
        return None, "event_post_url is a %s, not a str" % type(url).__name__
    quoted = _encode.quote_for_error(url)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # raises ValueError on a bad port
    except ValueError as e:
        return None, 'event_post_url "%s": %s' % (quoted, e)
    if parts.scheme not in ("http", "https"):
        return None, 'event_post_url "%s": the scheme must be http or https' % quoted
    if not parts.hostname:
        return None, 'event_post_url "%s": no host' % quoted
    if parts.username is not None or parts.password is not None:
        return None, "event_post_url: user and password in the URL are not sent; use token="
    return parts, ""


def _check_options(client_id, event_post_url, flush_period, timeout, stop_timeout, limits, token,
                   retry_pin_timeout=600.0):
    why = _encode.check_identifier(client_id)
    if why:
        return 'client ID "%s" %s' % (_encode.quote_for_error(client_id), why), None
    url, why = check_url(event_post_url)
    if why:
        return why, None
    for name, value, least in (("flush_period", flush_period, 0.001), ("timeout", timeout, 0.001),
                               ("stop_timeout", stop_timeout, 0.0), ("retry_pin_timeout", retry_pin_timeout, 0.001)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= least:
            return "%s must be a number of seconds >= %g, not %s" % (name, least, _encode.describe(value)), None
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return "%s must be a positive int, not %s" % (name, _encode.describe(value)), None
    if token is not None and (not isinstance(token, str) or not token.isascii() or not token.isprintable()):
        return "token must be a str of printable ASCII", None
    return "", url


class Client:
    def __init__(self, client_id, event_post_url, flush_period=1.0, max_pending_events=250_000,
                 max_pending_bytes=64 << 20, max_retry_bytes=64 << 20, max_body_bytes=4 << 20, timeout=5.0,
                 stop_timeout=5.0, token=None, compress=False, retry_pin_timeout=600.0):
        """Raises ValueError naming the first invalid argument.
        retry_pin_timeout: seconds a body that may have reached an address is
        retried only there while that address gives no answer (the agent's
        default dedup window, agent.dedup_ttl_s = 600 s; _sender.py)."""
        limits = {"max_pending_events": max_pending_events, "max_pending_bytes": max_pending_bytes,
                  "max_retry_bytes": max_retry_bytes, "max_body_bytes": max_body_bytes}
        why, url = _check_options(client_id, event_post_url, flush_period, timeout, stop_timeout, limits, token,
                                  retry_pin_timeout)
        if why:
            raise ValueError(why)
        self.client_id = client_id
        self.event_post_url = event_post_url
        self._inert_reason = ""
        self._period = float(flush_period)
        self._max_events = max_pending_events
        self._max_bytes = max_pending_bytes
        self._stop_timeout = float(stop_timeout)
        self._timeout = float(timeout)
        self._stats = Stats()
        self._init_sync()
        self._encoder = _encode.Encoder(client_id, max_body_bytes)
        self._sender = Sender(url, self._stats, self._lock, max_retry_bytes, self._timeout, token, compress,
                              float(retry_pin_timeout))
        self._names = {}  # valid names, each mapped to itself (events share one str per name)
        self._successor = None  # the client Initialize() replaced this one with
        _process.register(self)

    @classmethod
    def inert(cls, reason):
        """A client that counts every event as dropped_invalid: what the
        first event gets when the default client cannot be made (a bad
        $TABA_CLIENT_ID, say), since a recording call must not raise."""
        self = cls.__new__(cls)
        self.client_id = ""
        self.event_post_url = ""
        self._inert_reason = reason
        self._max_events = 0  # every event takes the slow path, which refuses it
        self._max_bytes = 0
        self._stats = Stats()
        self._stats.last_invalid = reason
        self._init_sync()
        self._closed = self._stopped = True
        self._names = {}
        self._successor = None
        _process.register(self)
        # Logged from a thread of its own: the recording call that made this
        # client must not wait on a log handler.
        threading.Thread(target=LOG.error, args=("taba: no client, every event is dropped: %s", reason),
                         name="taba-client-log", daemon=True).start()
        return self

    def _init_sync(self):
        """The lock, the deque and the flush thread's state (also in a forked
        child, where the parent's are not to be used)."""
        # Reentrant: a signal handler that records while its thread is
        # inside a locked section must not deadlock.
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue = collections.deque()
        self._queued_bytes = 0  # text payload bytes reserved by events in the deque
        self._high_water = max(1, self._max_events // 2)
        self._closed = False  # the final flush took the last events
        self._stopping = False
        self._stopped = False
        self._thread = None
        self._thread_failed = False  # no thread can start (interpreter shutdown): flush on the caller's thread
        self._thread_retry_at = 0.0  # after a failed start, when to try again
        self._inline = threading.Lock()  # serializes those flushes
        self._inline_owner = None  # the thread doing an inline final flush
        self._early = False  # the deque passed its high-water mark
        self._flush_wanted = 0
        self._flush_done = 0
        self._flush_ok = True
        self._flush_deadline = 0.0
        self._log_reason = ""
        self._log_count = 0
        self._log_at = 0.0

    # -- the record path --------------------------------------------------------

    def add_number(self, name, type_name, value):
        """Buffers a numeric event (`value` a finite float)."""
        canonical = self._names.get(name)
        if canonical is None:
            canonical = self._admit(name)
            if canonical is None:
                return
        queue = self._queue
        if len(queue) >= self._max_events or self._closed:
            return self._overflow(canonical, type_name, _encode.KIND_NUMBER, value, None, 0)
        queue.append((canonical, type_name, _encode.KIND_NUMBER, value, None, _now(), 0))
        if (len(queue) >= self._high_water and not self._early) or self._thread is None or self._closed:
            self._after_append()

    def add(self, name, type_name, kind, value, expiry, size):
        """Buffers an event whose payload the caller checked; `size` is the
        UTF-8 size of a text payload (0 for numbers)."""
        if not size:
            if kind == _encode.KIND_NUMBER:
                return self.add_number(name, type_name, value)
        canonical = self._names.get(name)
        if canonical is None:
            canonical = self._admit(name)
            if canonical is None:
                return
        event = (canonical, type_name, kind, value, expiry, _now(), size)
        queue = self._queue
        early = False
        with self._lock:
            taken = not (len(queue) >= self._max_events or self._closed
                         or self._queued_bytes + size > self._max_bytes)
            if taken:
                half = self._max_bytes // 2
                early = self._queued_bytes < half <= self._queued_bytes + size
                self._queued_bytes += size
                queue.append(event)
        if not taken:  # outside the lock: client locks never nest
            return self._overflow(*event)
        if early or (len(queue) >= self._high_water and not self._early) or self._thread is None or self._closed:
            self._after_append()

    def _after_append(self):
        """The rare cases after an append: the deque passed half its bound
        (wake the flush thread), no thread runs yet (start one), or the
        client was closed between the check and the append (the event is
        late: it goes to the successor, or counts as unsent)."""
        if self._closed:
            with self._lock:
                queue = self._queue
                late = [queue.popleft() for _ in range(len(queue))]
                successor = self._successor
                if late and successor is None:
                    self._stats.recorded += len(late)
                    self._stats.dropped_unsent += len(late)
                    self._queued_bytes -= sum(e[6] for e in late)
            if late and successor is not None:
                for e in late:
                    successor.add(e[0], e[1], e[2], e[3], e[4], e[6])
            return
        self._nudge()

    def _admit(self, name):
        """The name itself when it is valid (remembered), else None (the
        event counted as refused)."""
        why = _encode.check_identifier(name)
        if why:
            self.refuse(name, why)
            return None
        if len(self._names) >= MAX_CACHED_NAMES:
            self._names.clear()
        self._names[name] = name
        return name

    def _overflow(self, name, type_name, kind, value, expiry, ts, size=0):
        """An event the deque cannot take: full, or after Stop()."""
        with self._lock:
            stats = self._stats
            successor = self._successor if self._closed else None
            if successor is None:
                if self._inert_reason:
                    stats.dropped_invalid += 1
                elif not self._closed:
                    stats.dropped_full += 1
                else:  # accepted, and never to be sent
                    stats.recorded += 1
                    stats.dropped_unsent += 1
                return
        # Initialize() replaced this client while the event was on its way
        # (outside the lock: client locks never nest).
        successor.add(name, type_name, kind, value, expiry, size)

    def refuse(self, name, why):
        """Counts one event refused at the call; `why` names the problem.
        The flush thread logs it."""
        reason = 'name "%s": %s' % (_encode.quote_for_error(name), why)
        with self._lock:
            self._stats.dropped_invalid += 1
            self._stats.last_invalid = reason
            self._note(reason)
            log_due = time.monotonic() >= self._log_at
        if log_due:  # wake the flush thread to log it now, not at the next tick
            self._nudge()

    def _note(self, reason):
        """Counts a dropped event for the next log message, which quotes the
        first reason since the last message (under the lock)."""
        if not self._log_count:
            self._log_reason = reason
        self._log_count += 1

    def _emit_log(self):
        """Logs the dropped events noted since the last message, at most
        once per LOG_INTERVAL (on the flush thread: logging may block)."""
        with self._lock:
            if not self._log_count or time.monotonic() < self._log_at:
                return
            reason, count = self._log_reason, self._log_count
            self._log_count = 0
            self._log_at = time.monotonic() + LOG_INTERVAL
        if count > 1:
            LOG.warning("taba: events dropped: %s (and %d more since the last message)", reason, count - 1)
        else:
            LOG.warning("taba: event dropped: %s", reason)

    def _nudge(self):
        if self._thread is None:
            self._ensure_thread()
            return
        with self._wake:
            self._early = True
            self._wake.notify_all()

    # -- the flush thread -------------------------------------------------------

    def _ensure_thread(self):
        """Starts the flush thread if none runs; False when none can (at
        interpreter shutdown, say): flushes then run on the caller's thread."""
        with self._lock:
            if self._thread is not None:
                return True
            if self._thread_failed or self._stopping or self._stopped or self._inert_reason:
                return False
            if time.monotonic() < self._thread_retry_at:
                return False
            thread = self._thread = threading.Thread(target=self._run, name="taba-client-flush", daemon=True)
            try:
                thread.start()
            except RuntimeError as e:  # "can't start new thread" (now or for good)
                self._thread = None
                self._stats.last_error = "no flush thread: %s" % e
                if sys.is_finalizing():
                    self._thread_failed = True
                else:  # try again a second later, at the next event
                    self._thread_retry_at = time.monotonic() + 1.0
                return False
        return True

    def _collect(self, close):
        """Drains the deque into bodies in the retry queue."""
        with self._lock:
            queue = self._queue
            popleft = queue.popleft
            events = [popleft() for _ in range(len(queue))]
            self._stats.recorded += len(events)
            self._stats.pending_events += len(events)
            if self._queued_bytes:
                self._queued_bytes -= sum(e[6] for e in events)
            if close:
                self._closed = True
        if not events:
            return
        try:
            bodies, conflicts, note = self._encoder.encode(events)
        except Exception as e:  # a bug: the events are counted, not left pending
            with self._lock:
                self._stats.pending_events -= len(events)
                self._stats.dropped_rejected += len(events)
                self._stats.last_error = "encoding failed: %s" % _encode.describe(e)
                self._note(self._stats.last_error)
            return
        with self._lock:
            self._stats.pending_events -= len(events)
            if conflicts:
                self._stats.dropped_conflict += conflicts
                self._stats.last_invalid = note
                self._note(note)
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

    def _final(self, deadline):
        """The last flush: everything recorded is sent or counted unsent."""
        try:
            self._collect(True)
            return self._send_until(deadline)
        finally:
            self._sender.drop_all()
            self._sender.close()

    def _tick(self):
        """A periodic flush: sends while the receiver takes bodies, for about
        one period (or one request timeout); skips a receiver backing off."""
        self._collect(False)
        now = time.monotonic()
        if now >= self._sender.retry_at:
            # Cut short by Stop(), or by a deque passing half its bound
            # while the receiver is slow (the events are drained, then
            # sending goes on).
            self._sender.send(now + max(self._period, self._timeout), lambda: self._stopping or self._early)
        return self._sender.empty()

    def _run(self):
        next_tick = time.monotonic() + self._period
        errors_logged_at = 0.0
        while True:
            with self._wake:
                while not (self._stopping or self._flush_wanted > self._flush_done or self._early):
                    remaining = next_tick - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                final = self._stopping
                serving = self._flush_wanted
                explicit = final or serving > self._flush_done
                deadline = time.monotonic() + self._stop_timeout if final else self._flush_deadline
                self._flush_deadline = 0.0
                self._early = False
            all_sent = False
            try:
                self._emit_log()
                if final:
                    all_sent = self._final(deadline)
                elif explicit:
                    self._collect(False)
                    all_sent = self._send_until(deadline)
                else:
                    all_sent = self._tick()
                self._emit_log()
            except Exception as e:  # a bug here must not end the thread
                with self._lock:
                    self._stats.last_error = "flush failed: %s" % _encode.describe(e)
                if time.monotonic() >= errors_logged_at:
                    errors_logged_at = time.monotonic() + LOG_INTERVAL
                    LOG.exception("taba: flush failed")
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

    # -- flush, stop, status ----------------------------------------------------

    def _idle(self):
        return not self._queue and self._sender.empty()

    def _wait_bound(self):
        """How long Stop() waits for the flush thread: its final flush, plus
        one POST that may run past it."""
        return self._stop_timeout + self._timeout + 1.0

    def flush(self, timeout):
        """Ships everything recorded before the call; True when all of it
        (and every older body) was acknowledged within `timeout` seconds."""
        if self._inert_reason:
            return False
        if self._thread is None and self._idle() and not self._stopping:
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        if not self._ensure_thread():
            if self._inline_owner == threading.get_ident():
                return False  # a signal handler inside this thread's final flush
            with self._inline:
                if self._stopped or self._stopping:
                    return self._flush_ok
                self._collect(False)
                return self._send_until(deadline)
        with self._wake:
            if self._stopped or self._stopping:
                self._wake.wait_for(lambda: self._stopped, self._wait_bound())
                return self._stopped and self._flush_ok
            self._flush_wanted += 1
            ticket = self._flush_wanted
            self._flush_deadline = max(self._flush_deadline, deadline)
            self._wake.notify_all()
            # One POST may run past the deadline by up to its own timeout.
            give_up = deadline + self._timeout + 1.0
            served = self._wake.wait_for(lambda: self._flush_done >= ticket or self._stopped,
                                         max(0.0, give_up - time.monotonic()))
            return bool(served) and self._flush_done >= ticket and self._flush_ok

    def stop(self):
        """A final flush bounded by stop_timeout, then the thread ends.
        Idempotent; later events count as dropped_unsent. Waits at most
        stop_timeout + timeout + 1 s (a receiver that trickles its reply,
        or a host name whose lookup hangs, cannot hold up an exit longer)."""
        if self._inert_reason:
            return
        with self._wake:
            if self._stopped:
                return
            first = not self._stopping
            self._stopping = True
            thread = self._thread
            if thread is not None:
                self._wake.notify_all()
            elif not first:  # another caller is doing the final flush
                if self._inline_owner != threading.get_ident():  # (not a signal handler inside it)
                    self._wake.wait_for(lambda: self._stopped, self._wait_bound())
                return
        if thread is not None and thread is not threading.current_thread():
            try:
                thread.join(self._wait_bound())
                return
            except RuntimeError:  # its start was interrupted: it never ran
                with self._lock:
                    self._thread = None
        if thread is threading.current_thread():
            return
        # No thread (nothing recorded yet, or none can start): the final
        # flush runs here.
        with self._inline:
            self._inline_owner = threading.get_ident()
            ok = False
            try:
                ok = self._final(time.monotonic() + self._stop_timeout)
            finally:
                self._inline_owner = None
                with self._wake:
                    self._flush_ok = ok
                    self._stopped = True
                    self._wake.notify_all()

    def status(self):
        with self._lock:
            s = dict(vars(self._stats))
            in_queue = len(self._queue)
            s["recorded"] += in_queue
            if self._stopped:  # a straggler appended after the final drain
                s["dropped_unsent"] += in_queue
            else:
                s["pending_events"] += in_queue
            if self._inert_reason:
                s["state"] = "inert"
            else:
                s["state"] = "stopped" if self._stopped else "stopping" if self._stopping else "running"
        s["client_id"] = self.client_id
        s["event_post_url"] = self.event_post_url
        return s

    # -- fork -------------------------------------------------------------------

    def after_fork_in_child(self):
        """In a forked child: a new lock, deque and (at the first event)
        thread; zeroed counters. The parent's events and bodies are the
        parent's to send. A client the parent had stopped stays stopped."""
        was_running = not (self._stopping or self._stopped)
        self._init_sync()
        self._stats.__init__()
        if self._inert_reason:
            self._closed = self._stopped = True
            return
        self._sender.reset_after_fork(self._lock)
        if not was_running:
            self._closed = self._stopped = True
