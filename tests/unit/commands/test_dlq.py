"""dlq replay: the quote an unpublishable letter carries is recovered whole, for storage."""

from __future__ import annotations

import msgspec

from engine.commands.dlq import _epoch_ns, _quote_of, _replay_of
from engine.quote import DlqMessage, Quote, Rules


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


def _letter(reason: str, price: float) -> DlqMessage:
    return DlqMessage(
        schema_version=1, kind="rejected", symbol="XYZ", reason=reason, detail="d",
        market_time=1_764_000_000, price=price, source="yahoo_v7",
        ingest_time="2025-11-24T16:00:03.000000Z", correlation_id="c" * 36, cycle=3, volume=10,
        market_state="CLOSED", currency="USD", exchange="NMS",
    )  # fmt: skip


def test_an_unconfirmed_move_is_not_re_driven() -> None:
    """A price_unconfirmed letter lacks the reference it was judged against: replaying it under
    the absolute bounds alone would publish the glitch it held back."""
    assert _replay_of(_letter("price_unconfirmed", 300.0), Rules(), "s") == "unconfirmed"


def test_a_rejected_price_is_judged_by_the_absolute_bounds() -> None:
    """Without a reference in the letter, the bounds decide: widened bounds re-drive it."""
    letter = _letter("price_out_of_range", 743_500.0)
    assert _replay_of(letter, Rules(min_price=0.01, max_price=100_000.0), "s") == "still_invalid"
    replay = _replay_of(letter, Rules(), "s")
    assert not isinstance(replay, str) and replay.quote is not None
    assert replay.quote.price == 743_500.0
