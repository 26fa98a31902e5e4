"""The sending side: encoded bodies, each with the Taba-Batch-Id it keeps for
its whole life, POSTed oldest first to the event post URL.

Delivery is at-least-once on the wire and exactly-once in effect: a body that
failed (connection error, timeout, 5xx, 503...) is sent again later with the
same batch id, which the receiver uses to apply it only once, also when the
first attempt did arrive and only its 200 was lost. The receiver refuses
name blocks, not bodies: a 200 with a Taba-Refused-Blocks header applied the
rest of the body, and its "line N: reason" lines name the refused blocks. A
400, 413 or 415 means nothing of the body can ever be applied: it is dropped
whole. Other statuses (401, 403, 404, 408, 429, 5xx) are retried.

A receiver remembers batch ids only for itself (an agent for
agent.dedup_ttl_s), so a retry must go where the first attempt went. The
sender resolves the host itself (socket.getaddrinfo) and connects to one of
its addresses; once a body's bytes may have reached a server (the connection
was made and sending began), the body is pinned to that address (IP and
port) and every retry connects only there. The pin goes with the body's
answer (200, 400, 413, 415). A pinned address that gives no HTTP answer for
retry_pin_timeout seconds releases the body to any address: counted in
`repinned` and said in last_error, since it may then be counted twice.
Bodies go oldest first, so only the front body can be pinned.

The same rules as the C++ client (src/client/sender.cpp), so that the two
behave alike in front of one receiver.

Thread-safety: the flush thread calls everything; the queue and the counters
it changes are guarded by the client's lock, passed in.
"""

import collections
import http.client
import os
import random
import socket
import time
import zlib

BACKOFF_BASE = 0.2  # seconds, doubled per consecutive failure
BACKOFF_MAX = 30.0
MIN_REQUEST_TIMEOUT = 0.05

_OK, _REJECTED, _RETRY = range(3)


def _reason_line(reason):
    """The line number of a "line N: ..." reason, or 0."""
    if not reason.startswith("line "):
        return 0
    number, colon, _ = reason[5:].partition(":")
    if not colon or not number.isdigit() or not number.isascii():
        return 0
    return int(number)


def _first_line(text):
    return text.split("\n", 1)[0][:300]


def _address_text(address):
    """'127.0.0.1:8279' or '[::1]:8279' for a (family, sockaddr) pair."""
    family, sockaddr = address
    if family == socket.AF_INET6:
        return "[%s]:%d" % (sockaddr[0], sockaddr[1])
    return "%s:%d" % (sockaddr[0], sockaddr[1])


class _Pending:
    __slots__ = ("body", "batch_id", "pin", "pin_heard")

    def __init__(self, body, batch_id):
        self.body = body
        self.batch_id = batch_id
        self.pin = None  # (family, sockaddr) its bytes may have reached: retries go there only
        self.pin_heard = 0.0  # monotonic time it was pinned, or the pinned address last answered


class Sender:
    def __init__(self, url, stats, lock, max_retry_bytes, timeout, token, compress, retry_pin_timeout=600.0):
        """url: a urllib.parse.SplitResult of an http or https URL; stats: the
        client's counters (attributes), changed under `lock`."""
        self._scheme = url.scheme
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._target = (url.path or "/") + ("?" + url.query if url.query else "")
        self._url = "%s://%s%s" % (url.scheme, url.netloc, url.path or "/")
        self._stats = stats
        self._lock = lock
        self._max_retry_bytes = max_retry_bytes
        self._timeout = timeout
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if token:
            self._headers["Authorization"] = "Bearer " + token
        self._compress = compress
        if compress:
            self._headers["Content-Encoding"] = "deflate"
        self._pin_timeout = retry_pin_timeout
        self._queue = collections.deque()
        self._conn = None
        self._only = None  # the address the next connection must use, or None: any
        self._conn_addr = None  # the address of the open connection's socket
        self._failures = 0
        self.retry_at = 0.0  # monotonic time before which a tick does not retry

    def reset_after_fork(self, lock):
        """In a forked child: the parent's bodies are the parent's to send.
        The connection's socket is shared with the parent: it is dropped
        without a shutdown, which would end the parent's connection too."""
        self._lock = lock
        self._queue.clear()
        self._conn = None
        self._conn_addr = None
        self._failures = 0
        self.retry_at = 0.0

    def empty(self):
        return not self._queue

    def enqueue_locked(self, body):
        """Queues `body` under a fresh batch id, first dropping the oldest
        bodies while the queue would exceed max_retry_bytes. Called with the
        lock held."""
        stats = self._stats
        while self._queue and stats.retry_bytes + len(body.data) > self._max_retry_bytes:
            old = self._queue.popleft().body
            stats.dropped_retry_overflow += old.events
            stats.retry_events -= old.events
            stats.retry_bytes -= len(old.data)
            stats.retry_bodies -= 1
        stats.retry_events += body.events
        stats.retry_bytes += len(body.data)
        stats.retry_bodies += 1
        # os.urandom, not the random module: ids must differ across forked
        # processes, and the module's state is copied at a fork.
        self._queue.append(_Pending(body, os.urandom(16).hex()))

    def drop_all(self):
        """Drops every queued body (counted in dropped_unsent)."""
        with self._lock:
            self._stats.dropped_unsent += self._stats.retry_events
            self._stats.retry_events = self._stats.retry_bytes = self._stats.retry_bodies = 0
            self._queue.clear()

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._conn_addr = None

    def _open_socket(self, _address, timeout, _source_address=None):
        """Connects to self._only, else to the addresses the host resolves
        to, in order, until one takes the connection; notes the address in
        self._conn_addr. http.client calls it (as its _create_connection)
        when it opens a connection, so that the host name still goes in the
        Host header and, for https, in the TLS server name check."""
        self._conn_addr = None
        if self._only is not None:
            candidates = [self._only]
        else:
            infos = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
            candidates = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
        error = OSError("%s resolves to no address" % self._host)
        for family, sockaddr in candidates:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(sockaddr)
            except OSError as e:
                sock.close()
                error = e
                continue
            self._conn_addr = (family, sockaddr)
            return sock
        raise error

    def _connection(self, timeout, pin):
        self._only = pin
        if self._conn is not None and pin is not None and self._conn_addr != pin:
            self.close()  # open to another address, or not open
        if self._conn is None:
            if self._scheme == "https":
                self._conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._conn._create_connection = self._open_socket
        else:
            self._conn.timeout = timeout
            if self._conn.sock is not None:
                self._conn.sock.settimeout(timeout)
        return self._conn

    def _post(self, pending, timeout):
        """Returns (outcome, error, refused): refused holds a 200's refusal
        lines."""
        headers = dict(self._headers)
        headers["Taba-Batch-Id"] = pending.batch_id
        data = zlib.compress(pending.body.data) if self._compress else pending.body.data
        for attempt in (1, 2):
            reused = self._conn is not None and self._conn.sock is not None
            pinned = pending.pin
            try:
                conn = self._connection(timeout, pinned)
                conn.request("POST", self._target, body=data, headers=headers)
                response = conn.getresponse()
                text = response.read().decode("utf-8", "replace")
                refused_count = response.getheader("Taba-Refused-Blocks", "")
                self._pin(pending, answered=True)
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                break
            except (OSError, http.client.HTTPException) as e:
                # The connection was made (its address noted) before the
                # failure: the bytes may have reached that server.
                self._pin(pending, answered=False)
                self.close()
                # A kept-alive connection the receiver closed while idle:
                # once more on a new one, to the same address (the server
                # may also have taken the body and died before answering).
                stale = isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))
                if attempt == 1 and reused and stale:
                    continue
                reason = str(e) or type(e).__name__
                where = " at " + _address_text(pinned) if pinned is not None else ""
                return _RETRY, "%s: %s%s" % (reason, self._url, where), ""
        status = response.status
        if status == 200:
            if refused_count and refused_count != "0":
                error = "HTTP 200 from %s, %s block(s) refused: %s" % (self._url, refused_count, _first_line(text))
                return _OK, error, text
            return _OK, "", ""
        error = "HTTP %d from %s: %s" % (status, self._url, _first_line(text))
        return (_REJECTED if status in (400, 413, 415) else _RETRY), error, ""

    def _pin(self, pending, answered):
        """After an attempt: a body not yet pinned is pinned to the address
        its bytes went to, if any; a pinned one notes an answer."""
        if pending.pin is None:
            if self._conn_addr is not None:
                pending.pin = self._conn_addr
                pending.pin_heard = time.monotonic()
        elif answered:
            pending.pin_heard = time.monotonic()

    def _release_stale_pin(self, pending, now):
        """Releases the pin of a body whose address has not answered for
        retry_pin_timeout; the note for last_error, or ''."""
        if pending.pin is None or now - pending.pin_heard <= self._pin_timeout:
            return ""
        note = ("retry of batch %s pinned to %s got no answer for %d ms (retry_pin_timeout %g s): sent to any "
                "address of %s now, so it may be counted twice"
                % (pending.batch_id, _address_text(pending.pin), (now - pending.pin_heard) * 1000, self._pin_timeout,
                   self._url))
        pending.pin = None
        with self._lock:
            self._stats.repinned += 1
            self._stats.last_error = note
        return note

    @staticmethod
    def _refused_events(body, refused):
        seen = []
        events = 0
        for reason in refused.split("\n"):
            block = body.block_at_line(_reason_line(reason))
            if block is None or any(b is block for b in seen):
                continue
            seen.append(block)
            events += block.events
        return min(events, body.events)

    def _settle_front(self, applied):
        with self._lock:
            stats = self._stats
            done = self._queue.popleft().body
            stats.sent += applied
            stats.dropped_rejected += done.events - applied
            stats.retry_events -= done.events
            stats.retry_bytes -= len(done.data)
            stats.retry_bodies -= 1

    def _backoff(self):
        self._failures = min(self._failures + 1, 30)
        delay = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** min(self._failures - 1, 16)))
        # Jitter in [delay/2, delay): clients that failed together spread out.
        self.retry_at = time.monotonic() + delay / 2 + random.random() * delay / 2

    def send(self, deadline, interrupted=None):
        """POSTs queued bodies, oldest first, until the queue is empty (True),
        a post fails (False; the body stays first and a backoff starts), the
        monotonic `deadline` passes or interrupted() says so (False)."""
        while self._queue:
            now = time.monotonic()
            if now >= deadline or (interrupted is not None and interrupted()):
                return False
            timeout = min(max(deadline - now, MIN_REQUEST_TIMEOUT), self._timeout)
            pending = self._queue[0]
            released = self._release_stale_pin(pending, now)
            outcome, error, refused = self._post(pending, timeout)
            if released and error:
                error = released + "; then: " + error
            if outcome == _OK:
                applied = pending.body.events - (self._refused_events(pending.body, refused) if refused else 0)
                with self._lock:
                    self._stats.posts_ok += 1
                    if error:
                        self._stats.last_error = error
                self._settle_front(applied)
                self._failures = 0
                self.retry_at = 0.0
                continue
            with self._lock:
                self._stats.posts_failed += 1
                self._stats.last_error = error
            if outcome == _REJECTED:
                self._settle_front(0)
                continue
            self._backoff()
            return False
        return True
