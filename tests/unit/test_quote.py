"""Validation rules for one quote (pure; clock injected)."""

from __future__ import annotations

import msgspec
import pytest

from engine.quote import Quote, Rejection, RejectReason, Rules, YahooQuote, validate

NOW = 1_764_000_000.0


def yq(**kw: object) -> YahooQuote:
    base: dict[str, object] = dict(
        symbol="AAPL",
        quote_type="EQUITY",
        market_state="REGULAR",
        regular_market_price=190.5,
        regular_market_time=int(NOW) - 5,
        regular_market_volume=1000,
        regular_market_change_percent=1.25,
        currency="USD",
        exchange="NMS",
    )
    base.update(kw)
    return YahooQuote(**base)  # type: ignore[arg-type]


class TestValidate:
    def test_valid_quote(self) -> None:
        """A normal quote passes with its fields carried over."""
        q = validate(yq(), now_s=NOW)
        assert isinstance(q, Quote)
        assert (q.symbol, q.price, q.volume, q.change_percent) == ("AAPL", 190.5, 1000, 1.25)
        assert q.msg_id == f"AAPL:{int(NOW) - 5}:1000"

    def test_msg_id_differs_when_only_the_volume_grows(self) -> None:
        """Same market time, higher volume: a new observation, so a new Nats-Msg-Id."""
        a = validate(yq(), now_s=NOW)
        b = validate(yq(regular_market_volume=1500), now_s=NOW)
        assert isinstance(a, Quote) and isinstance(b, Quote)
        assert a.msg_id != b.msg_id

    @pytest.mark.parametrize(
        ("kw", "reason"),
        [
            ({"regular_market_price": 0.01}, RejectReason.PRICE_OUT_OF_RANGE),
            ({"regular_market_price": 100_000}, RejectReason.PRICE_OUT_OF_RANGE),
            ({"regular_market_price": float("nan")}, RejectReason.PRICE_OUT_OF_RANGE),
            ({"regular_market_price": -3.0}, RejectReason.PRICE_OUT_OF_RANGE),
            ({"regular_market_volume": -1}, RejectReason.NEGATIVE_VOLUME),
            ({"regular_market_price": None}, RejectReason.MISSING_PRICE),
            ({"regular_market_time": None}, RejectReason.MISSING_TIME),
            ({"regular_market_volume": None}, RejectReason.MISSING_VOLUME),
            ({"market_state": None}, RejectReason.MISSING_MARKET_STATE),
            ({"market_state": "LUNCH"}, RejectReason.UNKNOWN_MARKET_STATE),
            ({"quote_type": "NONE"}, RejectReason.NOT_TRADED),
            ({"regular_market_time": int(NOW) - 301}, RejectReason.STALE),
            ({"regular_market_time": int(NOW) + 500}, RejectReason.FUTURE_TIMESTAMP),
        ],
    )
    def test_rejections(self, kw: dict[str, object], reason: RejectReason) -> None:
        """Each rule rejects with its own reason and a detail naming the value."""
        rej = validate(yq(**kw), now_s=NOW)
        assert isinstance(rej, Rejection)
        assert rej.reason is reason and rej.symbol == "AAPL" and rej.detail

    def test_bounds_are_exclusive(self) -> None:
        """Just inside the bounds passes."""
        assert isinstance(validate(yq(regular_market_price=0.0101), now_s=NOW), Quote)
        assert isinstance(validate(yq(regular_market_price=99_999.99), now_s=NOW), Quote)
        assert isinstance(validate(yq(regular_market_volume=0), now_s=NOW), Quote)

    def test_stale_outside_regular_hours_is_accepted_and_flagged(self) -> None:
        """Outside REGULAR an old quote is expected: accepted, marked stale."""
        old = yq(market_state="CLOSED", regular_market_time=int(NOW) - 90_000)
        q = validate(old, now_s=NOW)
        assert isinstance(q, Quote) and q.stale

    def test_change_percent_optional(self) -> None:
        """A missing or non-finite change percent becomes null, not a rejection."""
        q0 = validate(yq(regular_market_change_percent=None), now_s=NOW)
        assert isinstance(q0, Quote) and q0.change_percent is None
        q = validate(yq(regular_market_change_percent=float("inf")), now_s=NOW)
        assert isinstance(q, Quote) and q.change_percent is None

    def test_custom_rules(self) -> None:
        """Configured bounds replace the defaults (e.g. to accept BRK-A)."""
        rules = Rules(max_price=1_000_000.0)
        assert isinstance(validate(yq(regular_market_price=743_500), now_s=NOW, rules=rules), Quote)

    def test_decodes_yahoo_shapes(self) -> None:
        """Whole numbers as JSON ints are accepted for float fields; camelCase names map."""
        raw = (
            b'{"symbol":"X","regularMarketPrice":241,"regularMarketTime":1,'
            b'"marketState":"CLOSED","regularMarketVolume":5,"extra":{"a":1}}'
        )
        q = msgspec.json.decode(raw, type=YahooQuote)
        assert q.regular_market_price == 241.0 and q.market_state == "CLOSED"


class TestPoisonValues:
    """Extreme values are rejected with a reason naming them, never passed on as a Quote."""

    @pytest.mark.parametrize(
        ("kw", "reason"),
        [
            ({"regular_market_time": -(2**62), "market_state": "CLOSED"},
             RejectReason.TIME_OUT_OF_RANGE),
            ({"regular_market_time": 0, "market_state": "POST"}, RejectReason.TIME_OUT_OF_RANGE),
            ({"regular_market_time": 2**63, "market_state": "CLOSED"},
             RejectReason.TIME_OUT_OF_RANGE),
            ({"regular_market_volume": 2**63}, RejectReason.VOLUME_OUT_OF_RANGE),
            ({"regular_market_volume": 2**70}, RejectReason.VOLUME_OUT_OF_RANGE),
            ({"regular_market_price": 1e308}, RejectReason.PRICE_OUT_OF_RANGE),
            ({"regular_market_price": float("inf")}, RejectReason.PRICE_OUT_OF_RANGE),
            ({"regular_market_price": float("nan")}, RejectReason.PRICE_OUT_OF_RANGE),
        ],
    )  # fmt: skip
    def test_extreme_values_are_rejected(self, kw: dict[str, object], reason: RejectReason) -> None:
        r = validate(yq(**kw), now_s=NOW)
        assert isinstance(r, Rejection) and r.reason is reason and r.detail

    def test_extreme_values_are_rejected_even_with_loose_price_rules(self) -> None:
        rules = Rules(max_price=float("inf"))
        r = validate(yq(regular_market_price=1e308), now_s=NOW, rules=rules)
        assert isinstance(r, Quote)  # 1e308 is finite: carried (records/messages handle it)
        r = validate(yq(regular_market_price=float("inf")), now_s=NOW, rules=rules)
        assert isinstance(r, Rejection) and r.reason is RejectReason.PRICE_OUT_OF_RANGE

    def test_infinite_change_percent_is_dropped_not_rejected(self) -> None:
        q = validate(yq(regular_market_change_percent=float("-inf")), now_s=NOW)
        assert isinstance(q, Quote) and q.change_percent is None
