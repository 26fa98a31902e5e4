"""The sender's reading of a receiver's refusal lines ("line N: reason"),
which come from the network: any text is read without an exception, each
refused block counts once, and never more events than the body holds."""

import random
import unittest

from taba._encode import Block, Body
from taba._sender import Sender, _reason_line


def body():
    # Lines 5-8: a block of 2 events; lines 9-13: a block of 3 events.
    return Body(b"", [Block(5, 8, 2), Block(9, 13, 3)], 5)


class RefusalLines(unittest.TestCase):
    def test_reason_lines(self):
        self.assertEqual(_reason_line("line 12: unknown type"), 12)
        for text in ("", "line", "line :", "line 12", "line x2: a", "Line 12: a", "line \u0661\u0662: a", "line -1: a"):
            self.assertEqual(_reason_line(text), 0, text)

    def test_each_refused_block_counts_once(self):
        b = body()
        self.assertEqual(Sender._refused_events(b, "line 6: bad\nline 7: bad"), 2)
        self.assertEqual(Sender._refused_events(b, "line 6: bad\nline 12: bad\nline 10: bad"), 5)
        self.assertEqual(Sender._refused_events(b, "line 99: no such line\nline 2: the header"), 0)

    def test_any_reply_text_is_read_without_an_exception(self):
        rng = random.Random(3)
        pieces = ["line ", "1", "5", "9", "13", "99999999999999999999", ":", " ", "\n", "\r", "x", "\u0661", "-", "\x00"]
        b = body()
        for _ in range(20000):
            text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 30)))
            refused = Sender._refused_events(b, text)
            self.assertTrue(0 <= refused <= b.events, text)


if __name__ == "__main__":
    unittest.main()
