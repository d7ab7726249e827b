"""At most one dead letter per (symbol, reason) within a window.

A symbol that is bad for a lasting reason (no market time, delisted, out of range) would
otherwise put one letter in the dead-letter stream every cycle. The first letter of a
(symbol, reason) pair goes out; the next ones within ``validation.dlq_dedupe_s`` are dropped and
counted in ``ingestion_dlq_letters_suppressed_total{reason}``. The window is kept in the
publisher's memory (a restart sends one more letter per pair, which is harmless).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from engine.observe import metrics
from engine.records import OutMessage


def letter_key(msg_id: str) -> tuple[str, str]:
    """(symbol, reason) of a rejection letter's id ``SYMBOL:reason:key``."""
    head = msg_id.rsplit(":", 1)[0]
    symbol, _, reason = head.rpartition(":")
    return symbol, reason


class DlqDedupe:
    """Drops dead letters whose (symbol, reason) already had one within ``window_s``."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self.sent: dict[tuple[str, str], float] = {}
        self.suppressed = 0

    def filter(self, msgs: Sequence[OutMessage]) -> list[OutMessage]:
        """``msgs`` without the letters suppressed by the window (quotes are never dropped)."""
        if self.window_s <= 0 or not any(m.dlq for m in msgs):
            return list(msgs)
        now = self.clock()
        if len(self.sent) > 100_000:  # forget expired pairs now and then (bounded memory)
            self.sent = {k: t for k, t in self.sent.items() if now - t < self.window_s}
        kept: list[OutMessage] = []
        for m in msgs:
            if m.dlq:
                key = letter_key(m.msg_id)
                last = self.sent.get(key)
                if last is not None and now - last < self.window_s:
                    self.suppressed += 1
                    metrics.record_dlq_suppressed(key[1])
                    continue
                self.sent[key] = now
            kept.append(m)
        return kept
