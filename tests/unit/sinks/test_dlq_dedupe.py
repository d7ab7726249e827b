"""DlqDedupe: one dead letter per (symbol, reason) within the window; quotes always pass."""

from __future__ import annotations

from engine.observe import metrics
from engine.records import OutMessage
from engine.sinks.dlq_dedupe import DlqDedupe, letter_key


def letter(symbol: str, reason: str, key: str) -> OutMessage:
    return OutMessage(True, f"{symbol}:{reason}:{key}", b"{}", 1)


def suppressed(reason: str) -> float:
    v = metrics.registry().get_sample_value(
        "ingestion_dlq_letters_suppressed_total", {"reason": reason}
    )
    return v or 0.0


def test_one_letter_per_symbol_and_reason_within_the_window() -> None:
    now = [1000.0]
    dd = DlqDedupe(3600.0, clock=lambda: now[0])
    quote = OutMessage(False, "AAPL:1764000000", b"{}", 1)
    before = suppressed("missing_time")
    first = dd.filter([quote, letter("BAD", "missing_time", "i1"), letter("BAD", "stale", "5")])
    assert len(first) == 3
    now[0] += 15  # next cycle: same symbol, same reason -> suppressed; the quote passes
    second = dd.filter([quote, letter("BAD", "missing_time", "i16"), letter("OTHER", "stale", "9")])
    assert [m.msg_id for m in second] == ["AAPL:1764000000", "OTHER:stale:9"]
    assert dd.suppressed == 1 and suppressed("missing_time") == before + 1
    now[0] += 3600  # the window has passed: one more letter
    assert len(dd.filter([letter("BAD", "missing_time", "i3616")])) == 1


def test_a_zero_window_sends_every_letter() -> None:
    dd = DlqDedupe(0.0)
    msgs = [letter("BAD", "missing_time", "i1"), letter("BAD", "missing_time", "i2")]
    assert dd.filter(msgs) == msgs


def test_letter_key() -> None:
    assert letter_key("BRK-B:missing_time:i123") == ("BRK-B", "missing_time")
    assert letter_key("X:encoding_failed:1764000000") == ("X", "encoding_failed")
