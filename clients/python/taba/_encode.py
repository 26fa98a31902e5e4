"""Names, payloads and wire protocol v1 bodies.

The bodies are byte for byte what the C++ client's encoder
(src/client/encoder.cpp) writes for the same events, so that the two clients
are one format to the receiver and one test checks both
(clients/python/tests/test_encode.py):

    1\\n\\n<client>\\n\\n
    <name>\\n
    ["CounterGroup",1796534240.995,"1"]\\n      one line per event
    \\n                                         ends the name block
    \\n                                         ends the client

Events are grouped by name in the order the names were first recorded; a
body is cut once it reaches max_body_bytes, repeating the name line when a
block continues in the next body. Timestamps have millisecond resolution;
numbers are written in their shortest form that reads back as the same
double, exactly as C++'s std::to_chars writes them ("1", "0.5", "1e+05",
"1e-07", and integers in fixed form with all their exact digits).
"""

import json
import math
import re
import reprlib

# How an event's payload is kept until the flush thread formats it.
KIND_NUMBER = 0  # number
KIND_TEXT = 1  # "text"
KIND_NUMBER_EXPIRY = 2  # [number, expiry]
KIND_TEXT_EXPIRY = 3  # ["text", expiry]
KIND_RAW = 4  # the payload's JSON text, as given

MAX_IDENTIFIER_BYTES = 256
# A text payload (string or JSON text) larger than this is refused at the
# call, so that an event line stays well under the receiver's 1 MiB limit.
MAX_TEXT_BYTES = 64 * 1024

_IDENTIFIER = re.compile(r"[A-Za-z0-9._~:/?@!$()*+;=-]{1,256}\Z")
_ALLOWED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:/?@!$()*+;=-")

# The JSON string literal of a str: "..." with only '"', '\' and control
# characters escaped (\b \f \n \r \t, others \u00XX), everything else as it
# is. The same as the C++ encoder's escaping (core/json_escape.h, kLetters).
json_string = json.encoder.encode_basestring


def check_identifier(value):
    """'' when `value` is a valid name or client ID, else a one-line reason.

    Names and client IDs are 1..256 bytes of A-Z a-z 0-9 . _ ~ : / ? @ ! $
    ( ) * + ; = - (docs/api.md section 4.1).
    """
    if not isinstance(value, str):
        return "is a %s, not a str" % type(value).__name__
    if _IDENTIFIER.match(value):
        return ""
    raw = value.encode("utf-8", "surrogatepass")
    if not raw:
        return "is empty"
    if len(raw) > MAX_IDENTIFIER_BYTES:
        return "is %d bytes long (at most %d allowed)" % (len(raw), MAX_IDENTIFIER_BYTES)
    for i, c in enumerate(raw):
        if c not in _ALLOWED:
            if 0x20 <= c < 0x7F:
                return "contains '%c' (0x%02x) at byte %d" % (c, c, i)
            return "contains byte 0x%02x at byte %d" % (c, i)
    return ""


def quote_for_error(value):
    """An untrusted value made printable for a message, to be put between
    double quotes: at most 64 bytes, '"' and '\\' escaped, other bytes
    outside printable ASCII as \\xNN."""
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
    elif isinstance(value, bytes):
        raw = value
    else:
        raw = describe(value).encode("utf-8", "backslashreplace")
    out = []
    for c in raw[:64]:
        if c in (0x22, 0x5C):
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    if len(raw) > 64:
        out.append("...")
    return "".join(out)


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


def describe(value):
    """A short repr of any value for a message; never raises."""
    try:
        return _short.repr(value)
    except Exception:
        return "<%s>" % type(value).__name__


def format_number(value):
    """The shortest text that reads back as the float `value` (finite), as
    C++'s std::to_chars(double) writes it: the fixed or the scientific form
    of the shortest round-trip digits, whichever is shorter (fixed on a
    tie), the exponent with a sign and at least two digits."""
    if value == 0.0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    text = repr(value)  # the shortest round-trip digits
    sign = ""
    if text[0] == "-":
        sign = "-"
        text = text[1:]
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    significant = digits.lstrip("0")
    # The decimal exponent of the first significant digit.
    point = len(whole) - 1 - (len(digits) - len(significant)) + (int(exponent) if exponent else 0)
    significant = significant.rstrip("0")
    n = len(significant)
    if point >= n - 1:
        # An integer: C++ writes its exact digits, not the shortest digits
        # padded with zeros (123456789012345677877, not ...680000).
        fixed = str(int(abs(value)))
    elif point >= 0:
        fixed = significant[: point + 1] + "." + significant[point + 1 :]
    else:
        fixed = "0." + "0" * (-point - 1) + significant
    scientific = "%s%se%s%02d" % (
        significant[0],
        "." + significant[1:] if n > 1 else "",
        "-" if point < 0 else "+",
        abs(point),
    )
    return sign + (fixed if len(fixed) <= len(scientific) else scientific)


def json_text(value):
    """Compact JSON text of a Python value (for payloads given as objects),
    non-ASCII kept as UTF-8. Raises ValueError or TypeError when the value
    has no JSON form (NaN, infinities, sets, objects...)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Block:
    """One name block of a body, so that a refusal naming a line of the body
    ("line N: reason") can be traced to the block and its events."""

    __slots__ = ("first_line", "last_line", "events")

    def __init__(self, first_line, last_line, events):
        self.first_line = first_line
        self.last_line = last_line
        self.events = events


class Body:
    __slots__ = ("data", "blocks", "events")

    def __init__(self, data, blocks, events):
        self.data = data  # bytes
        self.blocks = blocks  # [Block]
        self.events = events

    def block_at_line(self, line):
        for block in self.blocks:
            if block.first_line <= line <= block.last_line:
                return block
        return None


class Encoder:
    """Turns recorded events into bodies. Used by one thread (the flush
    thread). An event is a tuple (name, type, kind, value, expiry, ts,
    text_bytes)."""

    # Type bound to each name seen; cleared past this many names (a program
    # with more distinct names than that loses only the check).
    MAX_BINDINGS = 1 << 20
    # Formatted numbers kept for reuse (counters repeat a few values).
    MAX_CACHED_NUMBERS = 4096

    def __init__(self, client_id, max_body_bytes):
        self._header = "1\n\n%s\n\n" % client_id
        self._max_body_bytes = max_body_bytes
        self._bindings = {}
        self._numbers = {}

    def _number(self, value):
        if not value:  # 0.0 and -0.0 are one key of a dict
            return format_number(value)
        text = self._numbers.get(value)
        if text is None:
            text = format_number(value)
            if len(self._numbers) >= self.MAX_CACHED_NUMBERS:
                self._numbers.clear()
            self._numbers[value] = text
        return text

    def _payload(self, kind, value, expiry):
        if kind == KIND_NUMBER:
            return self._number(value)
        if kind == KIND_TEXT:
            return json_string(value)
        if kind == KIND_NUMBER_EXPIRY:
            return "[%s,%s]" % (self._number(value), self._number(expiry))
        if kind == KIND_TEXT_EXPIRY:
            return "[%s,%s]" % (json_string(value), self._number(expiry))
        return value  # KIND_RAW

    def _lines(self, type_name, events):
        """The event lines of one name block."""
        prefix = '["%s",' % type_name
        cached = self._numbers.get
        number = self._number
        payload = self._payload
        return [
            '%s%.3f,"%s"]\n' % (prefix, e[5], cached(e[3]) or number(e[3]))
            if e[2] == KIND_NUMBER
            else "%s%.3f,%s]\n" % (prefix, e[5], json_string(payload(e[2], e[3], e[4])))
            for e in events
        ]

    def encode(self, events):
        """Returns (bodies, conflicts, conflict_note): conflicts counts the
        events dropped because their name was recorded with another type
        first (the receiver would refuse their whole block)."""
        blocks = {}  # name -> (type, [event])
        conflicts = 0
        conflict_note = ""
        bindings = self._bindings
        if len(bindings) > self.MAX_BINDINGS:
            bindings.clear()
        for event in events:
            name = event[0]
            block = blocks.get(name)
            if block is None:
                bound = bindings.setdefault(name, event[1])
                block = blocks[name] = (bound, [])
            if event[1] != block[0]:
                conflicts += 1
                conflict_note = 'name "%s": type "%s" conflicts with type "%s" recorded earlier' % (
                    quote_for_error(name),
                    event[1],
                    block[0],
                )
                continue
            block[1].append(event)

        bodies = []
        max_bytes = self._max_body_bytes
        parts = [self._header]
        size = len(self._header)
        line = 5  # lines 1-4: version, blank, client ID, blank
        spans = []
        body_events = 0
        for name, (type_name, block_events) in blocks.items():
            lines = self._lines(type_name, block_events)
            count = len(lines)
            text = "".join(lines)
            nbytes = len(text) if text.isascii() else len(text.encode("utf-8"))
            i = 0
            while i < count:
                first_line = line
                line += 1
                parts.append(name + "\n")
                size += len(name) + 1
                if i == 0 and size + nbytes < max_bytes:
                    # The whole block fits (the common case).
                    parts.append(text)
                    size += nbytes
                    span_events = count
                    i = count
                else:
                    # The block reaches the size limit: event by event, and
                    # the body is cut after the event that reaches it.
                    span_events = 0
                    while i < count:
                        one = lines[i]
                        i += 1
                        parts.append(one)
                        size += len(one) if one.isascii() else len(one.encode("utf-8"))
                        span_events += 1
                        if size >= max_bytes:
                            break
                line += span_events
                parts.append("\n")
                size += 1
                spans.append(Block(first_line, line, span_events))
                line += 1
                body_events += span_events
                if size >= max_bytes:
                    parts.append("\n")
                    bodies.append(Body("".join(parts).encode("utf-8"), spans, body_events))
                    parts = [self._header]
                    size = len(self._header)
                    line = 5
                    spans = []
                    body_events = 0
        if spans:
            parts.append("\n")
            bodies.append(Body("".join(parts).encode("utf-8"), spans, body_events))
        return bodies, conflicts, conflict_note
