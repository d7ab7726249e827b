"""dlq replay: the quote an unpublishable letter carries is recovered whole, for storage."""

from __future__ import annotations

import msgspec

from engine.commands.dlq import _epoch_ns, _quote_of
from engine.quote import Quote


def test_quote_of_a_published_message_round_trips() -> None:
    q = Quote(
        symbol="AAPL", price=187.5, volume=1200, change_percent=0.4, market_time=1_764_000_000,
        market_state="REGULAR", currency="USD", exchange="NMS", source="yahoo",
        ingest_time_ns=1_764_000_003_123_456_000, correlation_id="c" * 36, cycle=7,
    )  # fmt: skip
    payload = msgspec.json.encode(q.to_message())
    assert _quote_of(payload) == q


def test_not_a_quote_message_is_none() -> None:
    assert _quote_of(b'{"kind": "other"}') is None
    assert _quote_of(b"not json") is None


def test_epoch_ns() -> None:
    assert _epoch_ns("1970-01-01T00:00:01.000002Z") == 1_000_002_000
    assert _epoch_ns("1970-01-01T00:00:01Z") == 1_000_000_000
