"""The Taba client API: the original taba.client module's functions, with
delivery that survives failures (docs/python.md).

    from taba import client

    client.Initialize(client_id='web01')        # optional; defaults below
    client.Counter('bids_won', 1)
    client.Counter('winning_bid_price', wincpm)
    client.Percentile('req_ms', 12.5)
    client.Gauge('config_version', 'v7')
    client.Stop()                                # or let atexit flush

Recording calls never raise and never block on I/O: an event they cannot
take is counted in GetStatus() (dropped_invalid, dropped_full...) and, for
an invalid one, logged on the "taba.client" logger at most every 10 s.
"""

import asyncio
import decimal
import numbers
import os
import socket
import threading

from . import _encode
from ._encode import KIND_NUMBER, KIND_NUMBER_EXPIRY, KIND_RAW, KIND_TEXT, KIND_TEXT_EXPIRY
from ._engine import Client
from .handlers.tab_type import TabType

__all__ = [
    "Initialize",
    "Stop",
    "Flush",
    "FlushAsync",
    "StopAsync",
    "GetStatus",
    "RecordEvent",
    "Counter",
    "Percentile",
    "Gauge",
    "Buffer",
    "Tab",
    "TabType",
    "ThreadEngine",
    "DEFAULT_EVENT_POST_URL",
]

# The agent on the same host.
DEFAULT_EVENT_POST_URL = "http://127.0.0.1:8279/post"

_client = None
_client_lock = threading.RLock()  # reentrant: a signal handler may record first


class ThreadEngine:
    """Accepted as Initialize(engine_class=...) for code written for the
    original client; this client always flushes from one background thread."""


def _defaults(client_id, event_post_url):
    if client_id is None:
        client_id = os.environ.get("TABA_CLIENT_ID") or socket.gethostname()
    if event_post_url is None:
        event_post_url = os.environ.get("TABA_EVENT_POST_URL") or DEFAULT_EVENT_POST_URL
    return client_id, event_post_url


def Initialize(client_id=None, event_post_url=None, flush_period=1, engine_class=None, **options):
    """Starts the process-wide client. client_id defaults to $TABA_CLIENT_ID,
    else the host name; event_post_url to $TABA_EVENT_POST_URL, else the
    local agent. `options`: max_pending_events, max_pending_bytes,
    max_retry_bytes, max_body_bytes, timeout, stop_timeout (seconds), token,
    compress, retry_pin_timeout (seconds). Raises ValueError for an invalid argument. Called again, it
    stops (and flushes) the previous client first; events that reach the old
    client after that go to the new one."""
    global _client
    client_id, event_post_url = _defaults(client_id, event_post_url)
    new = Client(client_id, event_post_url, flush_period, **options)
    with _client_lock:
        old, _client = _client, new
    if old is not None:
        old._successor = new
        old.stop()


def _get():
    """The process-wide client, started with the defaults by the first
    event when Initialize() was not called (an inert one that counts every
    event as invalid when the defaults do not make a client)."""
    global _client
    c = _client
    if c is not None:
        return c
    # Made outside _client_lock: a client registers itself under the fork
    # registry's lock, which a fork holds while it takes _client_lock.
    try:
        made = Client(*_defaults(None, None))
    except ValueError as e:
        made = Client.inert("the default client: %s" % e)
    with _client_lock:
        if _client is None:
            _client = made
        return _client


def _lock_for_fork():
    _client_lock.acquire()


def _unlock_after_fork():
    _client_lock.release()


def _new_lock_in_child():
    global _client_lock
    _client_lock = threading.RLock()


# Registered after the clients' own handlers (_process.py, imported first),
# so it takes _client_lock before they take theirs, and never the reverse.
os.register_at_fork(before=_lock_for_fork, after_in_parent=_unlock_after_fork,
                    after_in_child=_new_lock_in_child)


def Stop():
    """Final flush (bounded by stop_timeout, 5 s) and end of the flush
    thread. Later events are counted in dropped_unsent."""
    c = _client
    if c is not None:
        c.stop()


def Flush(timeout=5.0):
    """Blocks until everything recorded before the call is acknowledged
    (True) or `timeout` seconds pass (False)."""
    c = _client
    return True if c is None else c.flush(timeout)


async def FlushAsync(timeout=5.0):
    """Flush() for asyncio code: waits in a worker thread, not on the loop."""
    return await asyncio.get_running_loop().run_in_executor(None, Flush, timeout)


async def StopAsync():
    """Stop() for asyncio code."""
    await asyncio.get_running_loop().run_in_executor(None, Stop)


def GetStatus():
    """A dict of counters: every event offered to a recording call is in
    exactly one of sent, pending_events, retry_events and the dropped_*
    counters (docs/python.md). Before the client starts: {"state":
    "uninitialized"}."""
    c = _client
    return {"state": "uninitialized"} if c is None else c.status()


# -- payloads -----------------------------------------------------------------


def _number(value):
    """value as a finite float, or None."""
    if type(value) is float:
        v = value
    elif type(value) is int:
        try:
            v = float(value)
        except OverflowError:
            return None
    elif isinstance(value, (numbers.Real, decimal.Decimal)):  # bool, Fraction, numpy floats
        try:
            v = float(value)
        except (OverflowError, ValueError):
            return None
    else:
        return None
    return v if v - v == 0.0 else None  # NaN and infinities are not numbers here


def _text(value):
    """(str, UTF-8 size) of a str (or UTF-8 bytes), or (None, reason)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as e:
            return None, "is not UTF-8 (byte %d)" % e.start
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError as e:
            return None, "is not UTF-8 (a lone surrogate at character %d)" % e.start
    if size > _encode.MAX_TEXT_BYTES:
        return None, "is %d bytes (at most %d)" % (size, _encode.MAX_TEXT_BYTES)
    return value, size


def _scalar_json(value):
    """JSON text of a scalar that is not a str or number: true, false, null."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return None


def _raw(c, name, type_name, value):
    """Any JSON-able value, sent as its compact JSON text."""
    try:
        text = _encode.json_text(value)
    except (TypeError, ValueError) as e:
        return c.refuse(name, "%s value has no JSON form: %s" % (type_name, e))
    text, size = _text(text)
    if text is None:
        return c.refuse(name, "%s payload %s" % (type_name, size))
    c.add(name, type_name, KIND_RAW, text, None, size)


def _record_number(c, name, type_name, value):
    v = _number(value)
    if v is None:
        if isinstance(value, (list, tuple)) and value and _number(value[0]) is not None:
            return _raw(c, name, type_name, value)  # [n, ...]: the handler reads [0]
        return c.refuse(name, "%s value %s is not a finite number" % (type_name, _encode.describe(value)))
    c.add(name, type_name, KIND_NUMBER, v, None, 0)


def _expiry(c, name, type_name, expiration):
    e = _number(getattr(expiration, "timestamp", lambda: expiration)())
    if e is None:
        c.refuse(name, "%s expiration %s is not a finite number of epoch seconds"
                 % (type_name, _encode.describe(expiration)))
    return e


def _scalar(c, name, type_name, value, expiry):
    """Records a string, number, bool or None value (with `expiry`, epoch
    seconds, or None); False when the value is none of those."""
    if isinstance(value, (str, bytes)):
        text, size = _text(value)
        if text is None:
            c.refuse(name, "%s value %s" % (type_name, size))
        else:
            c.add(name, type_name, KIND_TEXT if expiry is None else KIND_TEXT_EXPIRY, text, expiry, size)
        return True
    v = _number(value) if not isinstance(value, bool) else None
    if v is not None:
        c.add(name, type_name, KIND_NUMBER if expiry is None else KIND_NUMBER_EXPIRY, v, expiry, 0)
        return True
    scalar = _scalar_json(value)
    if scalar is None:
        return False
    text = scalar if expiry is None else "[%s,%s]" % (scalar, _encode.format_number(expiry))
    c.add(name, type_name, KIND_RAW, text, None, len(text))
    return True


def _record_gauge(c, name, value, expiration):
    if expiration is None:
        if _scalar(c, name, TabType.GAUGE, value, None):
            return
        if isinstance(value, (list, tuple)) and value and _is_scalar(value[0]):
            return _raw(c, name, TabType.GAUGE, value)
        return c.refuse(name, "Gauge value %s is not a string, number, bool or None" % _type_of(value))
    e = _expiry(c, name, TabType.EXPIRY_GAUGE, expiration)
    if e is not None and not _scalar(c, name, TabType.EXPIRY_GAUGE, value, e):
        c.refuse(name, "ExpiryGauge value %s is not a string, number, bool or None" % _type_of(value))


def _record_buffer(c, name, value, expiration):
    type_name = TabType.BUFFER
    if (
        expiration is None
        and isinstance(value, (tuple, list))
        and len(value) == 2
        and not isinstance(value[1], bool)
        and _number(value[1]) is not None
    ):
        value, expiration = value  # the original client's Buffer(name, (value, expiry))
    e = None
    if expiration is not None:
        e = _expiry(c, name, type_name, expiration)
        if e is None:
            return
    if _scalar(c, name, type_name, value, e):
        return
    if expiration is None and isinstance(value, (list, tuple)):
        return c.refuse(name, "a Buffer value that is an array needs an expiry: Buffer(name, (array, expiry))")
    try:
        text = _encode.json_text(value)
    except (TypeError, ValueError) as err:
        return c.refuse(name, "Buffer value has no JSON form: %s" % err)
    if expiration is not None:
        text = "[%s,%s]" % (text, _encode.format_number(e))
    text, size = _text(text)
    if text is None:
        return c.refuse(name, "Buffer payload %s" % size)
    c.add(name, type_name, KIND_RAW, text, None, size)


def _is_scalar(value):
    return value is None or isinstance(value, (str, bool)) or _number(value) is not None


def _type_of(value):
    return "of type %s" % type(value).__name__


_NUMERIC_TYPES = frozenset(
    (TabType.COUNTER_GROUP, TabType.PERCENTILE_GROUP, TabType.PERCENTILE_COUNTER)
)
_MAX_TYPES = 4096
_checked_types = set(_NUMERIC_TYPES | {TabType.GAUGE, TabType.EXPIRY_GAUGE, TabType.BUFFER})


def _record(c, name, value, tab_type):
    if tab_type in _NUMERIC_TYPES:
        return _record_number(c, name, tab_type, value)
    if tab_type == TabType.GAUGE:
        return _record_gauge(c, name, value, None)
    if tab_type == TabType.EXPIRY_GAUGE:
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return _record_gauge(c, name, value[0], value[1])
        return c.refuse(name, "ExpiryGauge value must be (value, expiration)")
    if tab_type == TabType.BUFFER:
        return _record_buffer(c, name, value, None)
    if tab_type not in _checked_types:
        why = _encode.check_identifier(tab_type)
        if why:
            return c.refuse(name, 'type "%s" %s' % (_encode.quote_for_error(tab_type), why))
        if len(_checked_types) >= _MAX_TYPES:
            return c.refuse(name, 'type "%s": more than %d types' % (_encode.quote_for_error(tab_type), _MAX_TYPES))
        _checked_types.add(tab_type)
    _raw(c, name, tab_type, value)


# -- recording calls (never raise) ---------------------------------------------


def _guarded(record, name, *args):
    """Runs record(client, name, *args) on the process-wide client; any
    exception is counted as a refused event, never raised."""
    c = _client
    try:
        if c is None:
            c = _get()
        record(c, name, *args)
    except Exception as e:
        _unexpected(c, name, e)


def RecordEvent(name, value, tab_type):
    """Records `value` under `name` as an event of `tab_type` (a TabType
    constant or a type name a plugin serves)."""
    _guarded(_record, name, value, tab_type)


def _numeric_call(type_name, doc):
    """Counter() and Percentile(): the hot calls, written out (without
    _guarded's extra call) for a number's fast path."""

    def record(name, value=1):
        c = _client
        try:
            if c is None:
                c = _get()
            if type(value) is int or type(value) is float:
                v = float(value)
                if v - v == 0.0:  # finite
                    return c.add_number(name, type_name, v)
            _record_number(c, name, type_name, value)
        except Exception as e:
            _unexpected(c, name, e)

    record.__doc__ = doc
    return record


Counter = _numeric_call(TabType.COUNTER_GROUP, "Counter(name, value=1): a CounterGroup event (count, total and "
                        "percentiles over windows).")
Counter.__name__ = Counter.__qualname__ = "Counter"
Percentile = _numeric_call(TabType.PERCENTILE_GROUP, "Percentile(name, value=1): a PercentileGroup event.")
Percentile.__name__ = Percentile.__qualname__ = "Percentile"


def Gauge(name, value, expiration=None):
    """A Gauge event; with `expiration` (epoch seconds, or a datetime), an
    ExpiryGauge event whose value is shown until then."""
    _guarded(_record_gauge, name, value, expiration)


def Buffer(name, value, expiration=None):
    """A Buffer event. As in the original client, `value` may be the pair
    (value, expiry_epoch_seconds); a bare value is kept one hour."""
    _guarded(_record_buffer, name, value, expiration)


def _unexpected(c, name, error):
    """An exception inside a recording call: counted, never raised."""
    try:
        if c is not None:
            c.refuse(name, "unexpected %s" % _encode.describe(error))
    except Exception:
        pass


class Tab:
    """Records events of one name and type: Tab('bids').Record()."""

    def __init__(self, name, tab_type=TabType.COUNTER_GROUP):
        self.name = name
        self.type = tab_type

    def Record(self, value=1):
        RecordEvent(self.name, value, self.type)
