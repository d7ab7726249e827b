"""v8 chart: shape, consistency with the quote, intervals, ranges, errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.conftest import WED_1100, FakeClock, Harness, MakeEmu, et

META_KEYS = {
    "currency", "symbol", "exchangeName", "fullExchangeName", "instrumentType",
    "firstTradeDate", "regularMarketTime", "hasPrePostMarketData", "gmtoffset", "timezone",
    "exchangeTimezoneName", "regularMarketPrice", "fiftyTwoWeekHigh", "fiftyTwoWeekLow",
    "regularMarketDayHigh", "regularMarketDayLow", "regularMarketVolume", "longName",
    "shortName", "chartPreviousClose", "priceHint", "currentTradingPeriod", "dataGranularity",
    "range", "validRanges",
}  # fmt: skip


def result(r: Any) -> dict[str, Any]:
    assert r.status == 200, r.body[:300]
    body = r.json()
    assert body["chart"]["error"] is None
    res: dict[str, Any] = body["chart"]["result"][0]
    return res


async def test_daily_shape_and_last_bar_is_the_quote(h: Harness) -> None:
    res = result(await h.chart("AAPL", range="1mo", interval="1d"))
    meta = res["meta"]
    assert set(meta) >= META_KEYS
    assert "tradingPeriods" not in meta and "scale" not in meta
    assert meta["exchangeTimezoneName"] == "America/New_York" and meta["instrumentType"] == "EQUITY"
    assert meta["dataGranularity"] == "1d" and meta["range"] == "1mo"
    ts = res["timestamp"]
    q = res["indicators"]["quote"][0]
    assert set(q) == {"open", "high", "low", "close", "volume"}
    assert all(len(v) == len(ts) for v in q.values())
    assert 19 <= len(ts) <= 23 and ts == sorted(ts)
    assert res["indicators"]["adjclose"][0]["adjclose"] == q["close"]
    for o, hi, lo, c in zip(q["open"], q["high"], q["low"], q["close"], strict=True):
        assert lo <= min(o, c) + 1e-6 and hi >= max(o, c) - 1e-6
    (quote,) = await h.quotes("AAPL")
    assert q["close"][-1] == pytest.approx(quote["regularMarketPrice"], rel=1e-6)
    assert q["volume"][-1] == quote["regularMarketVolume"]
    assert q["close"][-2] == pytest.approx(quote["regularMarketPreviousClose"], rel=1e-6)
    assert meta["regularMarketPrice"] == quote["regularMarketPrice"]
    assert all(isinstance(v, int) for v in q["volume"])


async def test_history_is_stable_between_requests(h: Harness) -> None:
    a = result(await h.chart("MSFT", range="6mo", interval="1d"))
    b = result(await h.chart("MSFT", range="6mo", interval="1d"))
    assert a["timestamp"] == b["timestamp"]
    assert a["indicators"]["quote"][0]["close"][:-1] == b["indicators"]["quote"][0]["close"][:-1]


async def test_daily_bars_are_session_opens_on_weekdays(make_emu: MakeEmu) -> None:
    """At a weekday's session (clock injected: a REGULAR state forced on a weekend makes that
    day a session, so the wall clock would fail this every Saturday and Sunday)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    async with make_emu(clock=FakeClock(WED_1100), market_state="REGULAR", seed=11) as h:
        await h.login()
        res = result(await h.chart("NVDA", range="3mo", interval="1d"))
    ny = ZoneInfo("America/New_York")
    for t in res["timestamp"]:
        local = dt.datetime.fromtimestamp(t, ny)
        assert (local.hour, local.minute) == (9, 30) and local.weekday() < 5


async def test_period_range_and_chart_previous_close(h: Harness) -> None:
    full = result(await h.chart("JPM", range="3mo", interval="1d"))
    ts = full["timestamp"]
    p1, p2 = ts[10] - 3600, ts[20] - 3600
    part = result(await h.chart("JPM", period1=str(p1), period2=str(p2), interval="1d"))
    assert part["timestamp"] == ts[10:20]
    assert part["meta"]["range"] == ""
    closes = full["indicators"]["quote"][0]["close"]
    assert part["meta"]["chartPreviousClose"] == pytest.approx(closes[9], rel=1e-6)


async def test_intraday_1m_with_trading_periods(make_emu: MakeEmu) -> None:
    clock = FakeClock(et(2026, 11, 25, 11, 0))
    async with make_emu(clock=clock) as h:
        res = result(await h.chart("AAPL", range="1d", interval="1m"))
        meta = res["meta"]
        assert meta["previousClose"] > 0 and meta["scale"] == 3
        periods = meta["tradingPeriods"]
        assert isinstance(periods, list) and periods[0][0]["start"] == et(2026, 11, 25, 9, 30)
        ts = res["timestamp"]
        assert ts[0] == et(2026, 11, 25, 9, 30) and len(ts) == 90
        assert "adjclose" not in res["indicators"]
        (q,) = [x for x in (await _quote(h))]
        assert res["indicators"]["quote"][0]["close"][-1] == pytest.approx(
            q["regularMarketPrice"], rel=1e-6
        )
        pp = result(await h.chart("AAPL", range="1d", interval="1m", includePrePost="true"))
        assert set(pp["meta"]["tradingPeriods"]) == {"pre", "regular", "post"}
        assert pp["timestamp"][0] == et(2026, 11, 25, 4, 0)


async def _quote(h: Harness) -> list[dict[str, Any]]:
    await h.login()
    return await h.quotes("AAPL")


async def test_hourly_bars_align_on_the_open(make_emu: MakeEmu) -> None:
    clock = FakeClock(et(2026, 11, 25, 15, 0))
    async with make_emu(clock=clock) as h:
        res = result(await h.chart("AAPL", range="5d", interval="1h"))
        per_day = [t for t in res["timestamp"] if t >= et(2026, 11, 24, 0, 0)]
        assert per_day[:7] == [et(2026, 11, 24, 9, 30) + 3600 * i for i in range(7)]


@pytest.mark.parametrize("interval", ["2m", "5m", "15m", "30m", "60m", "90m"])
async def test_other_intraday_intervals(h: Harness, interval: str) -> None:
    res = result(await h.chart("MSFT", range="5d", interval=interval))
    assert res["meta"]["dataGranularity"] == interval
    assert len(res["timestamp"]) > 0


@pytest.mark.parametrize(("interval", "most"), [("5d", 60), ("1wk", 55), ("1mo", 13), ("3mo", 5)])
async def test_long_intervals_aggregate(h: Harness, interval: str, most: int) -> None:
    res = result(await h.chart("MSFT", range="1y", interval=interval))
    n = len(res["timestamp"])
    assert 1 < n <= most


async def test_max_range_starts_at_first_trade(h: Harness) -> None:
    res = result(await h.chart("AAPL", range="max", interval="1mo"))
    assert res["timestamp"][0] >= res["meta"]["firstTradeDate"] - 40 * 86400


async def test_replica_chart(h: Harness) -> None:
    res = result(await h.chart("AAPL.X3", range="5d", interval="1d"))
    assert res["meta"]["symbol"] == "AAPL.X3"


async def test_no_bars_shape(h: Harness) -> None:
    far = str(4_000_000_000)
    res = result(await h.chart("AAPL", period1=far, period2=str(4_000_086_400), interval="1d"))
    assert "timestamp" not in res
    assert res["indicators"]["quote"] == [{}]


@pytest.mark.parametrize("symbol", ["NOSUCHTHING", "BRKS"])
async def test_unknown_or_delisted_is_404_envelope(h: Harness, symbol: str) -> None:
    r = await h.chart(symbol, range="1d", interval="1d")
    assert r.status == 404
    assert r.json() == {
        "chart": {
            "result": None,
            "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
        }
    }


async def test_bad_interval_range_and_limits(h: Harness) -> None:
    r = await h.chart("AAPL", range="1d", interval="7m")
    assert r.status == 400 and "interval=7m" in r.json()["chart"]["error"]["description"]
    r = await h.chart("AAPL", range="forever", interval="1d")
    assert r.status == 400
    r = await h.chart("AAPL", range="1mo", interval="1m")
    assert r.status == 422 and "8 days" in r.json()["chart"]["error"]["description"]
    r = await h.chart("AAPL", range="1y", interval="5m")
    assert r.status == 422


async def test_chart_needs_no_crumb_and_has_chart_headers(make_emu: MakeEmu) -> None:
    async with make_emu() as h:
        r = await h.chart("AAPL", range="5d", interval="1d")
        assert r.status == 200
        assert r.headers["Cache-Control"] == "public, max-age=10, stale-while-revalidate=20"
        assert r.headers["X-Envoy-Decorator-Operation"].startswith("finance-chart-api")
