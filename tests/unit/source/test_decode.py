"""engine.source.decode: a v7 body into quotes, malformed quotes and missing symbols."""

from __future__ import annotations

import msgspec
import pytest

from engine.errors import UpstreamPayloadError
from engine.quote import RejectReason
from engine.source.decode import MalformedQuote, decode_quotes


def body(result: object, error: object = None) -> bytes:
    return msgspec.json.encode({"quoteResponse": {"result": result, "error": error}})


def test_quotes_malformed_and_missing_are_told_apart() -> None:
    b = body(
        [
            {"symbol": "AAPL", "regularMarketPrice": 190, "regularMarketTime": 1},
            {"symbol": "MSFT", "regularMarketPrice": "not a number"},
            {"nosymbol": True},
        ]
    )
    batch = decode_quotes(b, ["AAPL", "MSFT", "NVDA"])
    assert [q.symbol for q in batch.quotes] == ["AAPL"]
    assert batch.quotes[0].regular_market_price == 190.0
    assert [m.symbol for m in batch.malformed] == ["MSFT", "?"]
    assert isinstance(batch.malformed[0], MalformedQuote) and batch.malformed[0].detail
    assert batch.missing == ["NVDA"]


@pytest.mark.parametrize("raw", [b"{", b'{"quoteResponse": 5}', body(None, {"code": "x"})])
def test_a_broken_envelope_is_a_payload_error(raw: bytes) -> None:
    with pytest.raises(UpstreamPayloadError):
        decode_quotes(raw, ["AAPL"], "http://u")


def test_an_empty_result_means_every_symbol_is_missing() -> None:
    assert decode_quotes(body(None), ["A", "B"]).missing == ["A", "B"]


def test_nan_and_infinity_tokens_lose_only_their_quote() -> None:
    """orjson/msgspec refuse NaN/Infinity literals: only the quotes carrying one are lost."""
    raw = (
        b'{"quoteResponse":{"result":['
        b'{"symbol":"AAPL","regularMarketPrice":190,"regularMarketTime":1},'
        b'{"symbol":"NANP","regularMarketPrice":NaN,"regularMarketTime":1},'
        b'{"symbol":"INFP","regularMarketPrice":Infinity},'
        b'{"symbol":"NINF","regularMarketChangePercent":-Infinity,"longName":"a NaN, Infinity"},'
        b'{"symbol":"MSFT","regularMarketPrice":420.5,"fiftyTwoWeekHigh":NaN}'
        b'],"error":null}}'
    )
    batch = decode_quotes(raw, ["AAPL", "NANP", "INFP", "NINF", "MSFT"])
    assert [q.symbol for q in batch.quotes] == ["AAPL", "MSFT"]  # unknown field: carried
    assert sorted(m.symbol for m in batch.malformed) == ["INFP", "NANP", "NINF"]
    assert all("NaN" in m.detail or "Infinity" in m.detail for m in batch.malformed)
    assert batch.missing == []


def test_a_quote_for_a_symbol_not_requested_is_rejected() -> None:
    """A quote is only acceptable for a symbol that was asked for (never one cut to fit)."""
    long = "TECK-" + "X" * 295
    b = body(
        [
            {"symbol": "AAPL", "regularMarketPrice": 190, "regularMarketTime": 1},
            {"symbol": long, "regularMarketPrice": 10, "regularMarketTime": 1},
        ]
    )
    batch = decode_quotes(b, ["AAPL", "TECK"])
    assert [q.symbol for q in batch.quotes] == ["AAPL"]
    (bad,) = batch.malformed
    assert bad.reason is RejectReason.UNREQUESTED_SYMBOL and bad.symbol == long
    assert batch.missing == ["TECK"]
