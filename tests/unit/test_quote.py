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
            ({"regular_market_price": 0}, RejectReason.PRICE_OUT_OF_RANGE),
            ({"regular_market_price": 0.00009}, RejectReason.PRICE_OUT_OF_RANGE),
            ({"regular_market_price": 10_000_001}, RejectReason.PRICE_OUT_OF_RANGE),
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

    def test_absolute_bounds_are_inclusive_and_wide(self) -> None:
        """Without a reference, 0.0001..10,000,000 passes (sub-cent warrants, BRK-A)."""
        assert isinstance(validate(yq(regular_market_price=0.0001), now_s=NOW), Quote)
        assert isinstance(validate(yq(regular_market_price=10_000_000), now_s=NOW), Quote)
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
        """Configured bounds replace the defaults (here the seed's original 0.01..100,000)."""
        rules = Rules(min_price=0.01, max_price=100_000.0)
        r = validate(yq(regular_market_price=743_500), now_s=NOW, rules=rules)
        assert isinstance(r, Rejection) and r.reason is RejectReason.PRICE_OUT_OF_RANGE
        assert r.detail == "price=743500 not in [0.01, 100000] (no reference in the quote)"

    def test_decodes_yahoo_shapes(self) -> None:
        """Whole numbers as JSON ints are accepted for float fields; camelCase names map."""
        raw = (
            b'{"symbol":"X","regularMarketPrice":241,"regularMarketTime":1,'
            b'"marketState":"CLOSED","regularMarketVolume":5,"extra":{"a":1}}'
        )
        q = msgspec.json.decode(raw, type=YahooQuote)
        assert q.regular_market_price == 241.0 and q.market_state == "CLOSED"


class TestPlausibility:
    """Issue 16: real listings publish, corrupted prices do not (engine.plausibility)."""

    @pytest.mark.parametrize(
        ("symbol", "price", "prev", "low", "high"),
        [("BRK-A", 743_500.0, 741_200.0, 739_000.0, 745_100.0),
         ("SVREW", 0.0098, 0.0101, 0.0095, 0.0104)],
    )  # fmt: skip
    def test_brk_a_and_svrew_publish(
        self, symbol: str, price: float, prev: float, low: float, high: float
    ) -> None:
        """Both were rejected by the seed's literal bounds 0.01..100,000."""
        for refs in (
            {"regular_market_previous_close": prev},
            {"regular_market_day_low": low, "regular_market_day_high": high},
            {},
        ):
            q = validate(yq(symbol=symbol, regular_market_price=price, **refs), now_s=NOW)
            assert isinstance(q, Quote) and q.price == price, (symbol, refs)

    @pytest.mark.parametrize("price", [1e9, 0, -50.0, float("nan"), 1e308])
    def test_corrupted_prices_of_a_50_dollar_stock_are_rejected(self, price: float) -> None:
        r = validate(yq(regular_market_price=price, regular_market_previous_close=50), now_s=NOW)
        assert isinstance(r, Rejection) and r.reason is RejectReason.PRICE_OUT_OF_RANGE
        assert r.price == price or (price != price and r.price != r.price)

    def test_string_price_is_malformed(self) -> None:
        """A price sent as a string does not decode: the quote is malformed (decode.py)."""
        raw = b'{"symbol":"X","regularMarketPrice":"50.1","regularMarketTime":1}'
        with pytest.raises(msgspec.ValidationError, match="regularMarketPrice"):
            msgspec.json.decode(raw, type=YahooQuote)

    def test_a_big_move_waits_for_a_confirming_read(self) -> None:
        """300 for a $50 stock: held as price_unconfirmed; the next read near it publishes."""
        moved = yq(regular_market_price=300.0, regular_market_previous_close=50.0)
        first = validate(moved, now_s=NOW)
        assert isinstance(first, Rejection) and first.reason is RejectReason.PRICE_UNCONFIRMED
        assert first.price == 300.0 and "6x the previous close 50" in first.detail
        second = validate(
            yq(regular_market_price=302.5, regular_market_previous_close=50.0), now_s=NOW,
            held=first.price,
        )  # fmt: skip
        assert isinstance(second, Quote) and second.price == 302.5

    def test_a_reference_field_of_the_wrong_type_is_ignored(self) -> None:
        """A corrupted reference never makes the quote malformed: the next reference is used."""
        raw = (
            b'{"symbol":"X","regularMarketPrice":51.5,"regularMarketTime":1763999990,'
            b'"marketState":"REGULAR","regularMarketVolume":5,'
            b'"regularMarketPreviousClose":"n/a","regularMarketDayLow":50,'
            b'"regularMarketDayHigh":52,"fiftyTwoWeekLow":{"raw":1},"fiftyTwoWeekHigh":null}'
        )
        q = msgspec.json.decode(raw, type=YahooQuote)
        assert isinstance(validate(q, now_s=NOW), Quote)
        far = msgspec.structs.replace(q, regular_market_price=520.0)
        r = validate(far, now_s=NOW)
        assert isinstance(r, Rejection) and "the day range 50-52" in r.detail


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
