"""The quote a stream message carries, read back for the PostgreSQL reconcile."""

from __future__ import annotations

import msgspec
import pytest

from engine.quote import Quote
from engine.sinks.reconcile import to_quote


def quote(**kw: object) -> Quote:
    base: dict[str, object] = {
        "symbol": "AAPL", "price": 189.5, "volume": 1234, "change_percent": None,
        "market_time": 1_796_000_000, "market_state": "REGULAR", "currency": "USD",
        "exchange": None, "source": "yahoo", "ingest_time_ns": 1_796_000_001_123_456_000,
        "correlation_id": "0b6f1b8e-7d2e-4c4e-9a39-0d2d1d9b7f10", "cycle": 7, "stale": True,
    }  # fmt: skip
    base.update(kw)
    return Quote(**base)  # type: ignore[arg-type]


def test_message_round_trips_to_the_same_quote() -> None:
    q = quote()
    assert to_quote(msgspec.json.encode(q.to_message())) == q


def test_ingest_time_keeps_microseconds() -> None:
    q = quote(ingest_time_ns=1_796_000_001_000_001_999)
    assert to_quote(msgspec.json.encode(q.to_message())).ingest_time_ns == 1_796_000_001_000_001_000


@pytest.mark.parametrize("payload", [b"not json", b"{}", b'{"symbol": 1}'])
def test_not_a_quote_message_raises_decode_error(payload: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        to_quote(payload)
