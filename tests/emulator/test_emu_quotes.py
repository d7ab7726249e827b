"""v7 quote: fields, formatted, unknown/delisted/replica symbols, units, limits, headers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.conftest import SYMBOLS, Harness, MakeEmu
from yahoo_emulator.quotes import BASE_FIELDS

PRICE_FIELDS = (
    "regularMarketPrice",
    "regularMarketOpen",
    "regularMarketDayHigh",
    "regularMarketDayLow",
    "regularMarketPreviousClose",
    "bid",
    "ask",
)


async def test_full_quote_has_yahoo_types(h: Harness) -> None:
    (q,) = await h.quotes("AAPL")
    assert q["symbol"] == "AAPL" and q["quoteType"] == "EQUITY" and q["currency"] == "USD"
    assert q["exchange"] == "NMS" and q["fullExchangeName"] == "NasdaqGS"
    assert q["marketState"] == "REGULAR" and q["market"] == "us_market"
    assert q["exchangeTimezoneName"] == "America/New_York"
    assert q["exchangeTimezoneShortName"] in ("EST", "EDT")
    assert q["gmtOffSetMilliseconds"] in (-18_000_000, -14_400_000)
    for f in PRICE_FIELDS:
        assert isinstance(q[f], int | float) and not isinstance(q[f], bool) and q[f] > 0, f
    for f in ("regularMarketTime", "regularMarketVolume", "marketCap", "sharesOutstanding"):
        assert type(q[f]) is int, f
    # epoch seconds, not ms; firstTradeDate in ms
    assert 1_600_000_000 < q["regularMarketTime"] < 3_000_000_000
    assert q["firstTradeDateMilliseconds"] > 10**11
    assert q["regularMarketDayRange"] == f"{float(q['regularMarketDayLow'])!r} - " + repr(
        float(q["regularMarketDayHigh"])
    )
    assert q["corporateActions"] == [] and q["priceHint"] == 2


async def test_units_percent_vs_fraction(h: Harness) -> None:
    (q,) = await h.quotes("MSFT")
    chg = q["regularMarketPrice"] - q["regularMarketPreviousClose"]
    assert q["regularMarketChange"] == pytest.approx(chg, abs=1e-4)
    # regularMarketChangePercent is in percent ...
    assert q["regularMarketChangePercent"] == pytest.approx(
        chg / q["regularMarketPreviousClose"] * 100, rel=1e-4, abs=1e-6
    )
    # ... the 52-week / moving-average change percents are fractions
    lo = q["fiftyTwoWeekLow"]
    assert q["fiftyTwoWeekLowChangePercent"] == pytest.approx(
        (q["regularMarketPrice"] - lo) / lo, rel=1e-4
    )
    avg = q["fiftyDayAverage"]
    assert q["fiftyDayAverageChangePercent"] == pytest.approx(
        (q["regularMarketPrice"] - avg) / avg, rel=1e-4, abs=1e-6
    )
    assert abs(q["fiftyTwoWeekLowChangePercent"]) < 5  # a fraction, not 49.07


async def test_whole_numbers_are_json_ints(h: Harness) -> None:
    """Across many quotes, every price field that is whole is written without '.0'."""
    syms = list(h.emu.emulator.universe.symbols[:100])
    r = await h.quote(syms[:100], fields="regularMarketPreviousClose,regularMarketOpen")
    assert r.status == 200
    text = r.text
    result = r.json()["quoteResponse"]["result"]
    for q in result:
        for f in ("regularMarketPrice", "regularMarketPreviousClose", "regularMarketOpen"):
            v = q[f]
            if float(v).is_integer():
                assert isinstance(v, int), (q["symbol"], f, v)
    assert ".0," not in text.replace(" - ", "")  # no 241.0 outside range strings


async def test_fields_narrow_but_base_set_always_present(h: Harness) -> None:
    (q,) = await h.quotes("AAPL", fields="symbol")
    assert set(q) == BASE_FIELDS
    for absent in ("currency", "regularMarketVolume", "regularMarketChangePercent", "longName"):
        assert absent not in q
    (q,) = await h.quotes("AAPL", fields="currency,regularMarketVolume,regularMarketChangePercent")
    assert set(q) == BASE_FIELDS | {"currency", "regularMarketVolume", "regularMarketChangePercent"}
    (q,) = await h.quotes("AAPL", fields="bogusField,marketCap")
    assert set(q) == BASE_FIELDS | {"marketCap"}


async def test_field_selections_are_cached_independently(h: Harness) -> None:
    a = await h.quotes(SYMBOLS, fields="symbol")
    b = await h.quotes(SYMBOLS)
    c = await h.quotes(SYMBOLS, fields="symbol")
    assert [set(q) for q in a] == [set(q) for q in c]
    assert all("longName" in q for q in b)


async def test_formatted_true_gives_raw_fmt_objects(h: Harness) -> None:
    (plain,) = await h.quotes("AAPL", formatted="false")
    (q,) = await h.quotes("AAPL", formatted="true")
    price = q["regularMarketPrice"]
    assert set(price) == {"raw", "fmt"} and price["fmt"] == f"{price['raw']:.2f}"
    t = q["regularMarketTime"]
    assert isinstance(t["raw"], int) and t["fmt"].endswith(("EST", "EDT"))
    assert q["regularMarketChangePercent"]["fmt"].endswith("%")
    vol = q["regularMarketVolume"]
    assert set(vol) == {"raw", "fmt", "longFmt"} and vol["longFmt"] == f"{vol['raw']:,}"
    frac = q["fiftyTwoWeekLowChangePercent"]
    assert frac["fmt"] == f"{frac['raw'] * 100:.2f}%"
    rng = q["fiftyTwoWeekRange"]
    assert isinstance(rng["raw"], str) and " - " in rng["fmt"]
    # housekeeping stays plain, and the same fields are present either way
    assert q["priceHint"] == 2 and q["symbol"] == "AAPL" and q["tradeable"] is False
    assert isinstance(q["gmtOffSetMilliseconds"], int)
    assert set(q) == set(plain)


async def test_formatted_defaults_to_plain(h: Harness) -> None:
    (q,) = await h.quotes("AAPL")
    assert isinstance(q["regularMarketPrice"], int | float)


async def test_unknown_omitted_delisted_stub_request_order(h: Harness) -> None:
    result = await h.quotes(["msft", "NOPE1", "BRKS", "AAPL", "AAPL", "ZZZZZZ"])
    assert [q["symbol"] for q in result] == ["MSFT", "BRKS", "AAPL"]
    stub = result[1]
    assert stub["quoteType"] == "NONE" and stub["tradeable"] is False
    assert "regularMarketPrice" not in stub and "marketState" not in stub
    assert stub["customPriceAlertConfidence"] == "NONE" and stub["corporateActions"] == []
    only_unknown = await h.quote(["NOPE1", "NOPE2"])
    assert only_unknown.status == 200
    assert only_unknown.json() == {"quoteResponse": {"result": [], "error": None}}
    s = h.stats()["symbols"]
    assert s["unknown"] == 4 and s["delisted"] == 1 and s["served"] == 3


async def test_answers_yahoo_notation_only(h: Harness) -> None:
    """Like Yahoo, the emulator knows BRK-B and ABR-PD, not the screener's BRK/B and ABR^D
    (an engine that did not translate would find them missing)."""
    result = await h.quotes(["BRK-B", "BRK/B", "BRK-A", "ABR-PD", "ABR^D", "SVREW"])
    assert [q["symbol"] for q in result] == ["BRK-B", "BRK-A", "ABR-PD", "SVREW"]
    by = {q["symbol"]: q for q in result}
    assert by["BRK-A"]["regularMarketPrice"] > 100_000
    assert by["SVREW"]["regularMarketPrice"] < 0.01


async def test_delisted_list_is_a_runtime_knob(h: Harness) -> None:
    h.emu.configure(delisted=["AAPL"])
    (q,) = await h.quotes("AAPL")
    assert q["quoteType"] == "NONE"
    assert (await h.chart("AAPL", range="1d", interval="1d")).status == 404


async def test_replicas_have_their_own_walk(make_emu: MakeEmu) -> None:
    from tests.emulator.conftest import FakeClock

    clock = FakeClock()
    async with make_emu(clock=clock, seed=3) as h:
        await h.login()
        names = ["AAPL", "AAPL.X1", "AAPL.X999", "AAPL.X0", "AAPL.X1000", "NOPE.X5", "AAPL.X01"]
        first = await h.quotes(names)
        assert [q["symbol"] for q in first] == ["AAPL", "AAPL.X1", "AAPL.X999"]
        assert first[1]["longName"] == first[0]["longName"] == "Apple Inc."
        clock.advance(600)
        later = await h.quotes(["AAPL", "AAPL.X1", "AAPL.X999"])
        prices = {q["regularMarketPrice"] for q in later}
        assert len(prices) == 3  # three independent walks
        assert h.emu.emulator.market.n == len(h.emu.emulator.universe) + 2
        h.emu.configure(replicas=False)
        assert [q["symbol"] for q in await h.quotes(["AAPL.X2", "AAPL.X1", "AAPL"])] == ["AAPL"]


async def test_batch_above_max_symbols_is_plain_429(h: Harness) -> None:
    syms = list(h.emu.emulator.universe.symbols[:101])
    r = await h.quote(syms)
    assert r.status == 429 and r.body == b"Too Many Requests\r\n"
    assert "Retry-After" not in r.headers
    assert (await h.quote(syms[:100])).status == 200
    h.emu.configure(max_symbols=0)
    assert (await h.quote(syms)).status == 200


async def test_missing_symbols_is_400(h: Harness) -> None:
    r = await h.get("/v7/finance/quote", {"crumb": h.crumb})
    assert r.status == 400
    assert r.json()["finance"]["error"]["code"] == "Bad Request"


async def test_headers_like_yahoo(h: Harness) -> None:
    r = await h.quote("AAPL")
    assert r.headers["Server"] == "ATS"
    assert r.headers["Content-Type"] == "application/json;charset=utf-8"
    assert r.headers["Cache-Control"] == "public, max-age=1, stale-while-revalidate=9"
    assert r.headers["Vary"] == "Origin,Accept-Encoding"
    assert r.headers["X-Envoy-Decorator-Operation"].startswith("finance-quote-api")
    assert r.headers["X-Envoy-Upstream-Service-Time"] == "4"
    assert len(r.headers["Y-Rid"]) == 13


async def test_long_url_is_414(h: Harness) -> None:
    h.emu.configure(max_url_length=200, max_symbols=0)
    syms: list[Any] = list(h.emu.emulator.universe.symbols[:60])
    r = await h.quote(syms)
    assert r.status == 414
