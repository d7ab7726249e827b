"""Fidelity: yfinance, a real client nobody here wrote, works against the emulator.

yfinance has no base-URL setting, so the test hands it a ``curl_cffi`` Session subclass that
rewrites every ``https://*.yahoo.com/...`` URL to the emulator's origin. That covers the whole
flow: ``fc.yahoo.com`` cookie seeding, ``query1`` getcrumb, ``query2`` chart (timezone lookup
with ``range=1d`` and the history itself) and the crumb yfinance appends to every request.
yfinance's caches (timezones, cookies) live in a temporary directory and its process-wide
``YfData`` singleton is reset around each test.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yfinance as yf
from curl_cffi import requests as curl
from yfinance import cache as yf_cache
from yfinance.data import SingletonMeta, YfData

from yahoo_emulator import EmulatorConfig, EmulatorThread
from yahoo_emulator.yfsession import RewritingSession

SYMBOLS = [
    "AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "BRK-B", "JPM", "V", "XOM",
    "WMT", "JNJ", "ORCL", "KO", "PEP", "BAC", "CSCO", "TSM", "BABA", "ABR-PD",
]  # fmt: skip


def _reset_yfinance() -> None:
    SingletonMeta._instances.pop(YfData, None)
    YfData.cache_get.cache_clear()
    yf_cache._TzCacheManager._tz_cache = None
    yf_cache._CookieCacheManager._Cookie_cache = None
    yf_cache._ISINCacheManager._isin_cache = None


@pytest.fixture
def yf_isolated(tmp_path: Path) -> Iterator[None]:
    """yfinance caches in tmp_path, a fresh YfData singleton, and no thread left behind."""
    threads_before = set(threading.enumerate())
    old = yf_cache._TzDBManager.get_location()
    _reset_yfinance()
    yf.set_tz_cache_location(str(tmp_path / "yf-cache"))
    try:
        yield
    finally:
        _reset_yfinance()
        yf_cache.set_cache_location(old)  # closes the databases opened in tmp_path
    leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not leaked, leaked


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    # simulated time inside a regular session, whatever the wall clock says: a forced REGULAR
    # state alone has no intraday bars before 09:30 New York (the 1d/5m download would be empty)
    cfg = EmulatorConfig(
        market_state="REGULAR", freeze=True, seed=4, time_offset_s=_to_last_session_noon()
    )
    with EmulatorThread(cfg) as running:
        yield running


def _to_last_session_noon(now: float | None = None) -> float:
    """Seconds (<= 0) from ``now`` back to 12:00 New York on the latest weekday at or before
    it (the emulator's sessions are the weekdays)."""
    now = time.time() if now is None else now
    ny = ZoneInfo("America/New_York")
    t = dt.datetime.fromtimestamp(now, ny)
    noon = t.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon > t:
        noon -= dt.timedelta(days=1)
    while noon.weekday() >= 5:
        noon -= dt.timedelta(days=1)
    return noon.timestamp() - now


@pytest.fixture
def session(emu: EmulatorThread) -> Iterator[RewritingSession]:
    s = RewritingSession(emu.url)
    try:
        yield s
    finally:
        s.close()


def _emulator_chart(emu: EmulatorThread, symbol: str, p1: int, p2: int) -> dict[str, Any]:
    with curl.Session() as s:
        r = s.get(
            f"{emu.url}/v8/finance/chart/{symbol}",
            params={"period1": p1, "period2": p2, "interval": "1d"},
        )
    assert r.status_code == 200
    res: dict[str, Any] = r.json()["chart"]["result"][0]
    return res


def _emulator_quotes(emu: EmulatorThread, symbols: list[str]) -> dict[str, dict[str, Any]]:
    with curl.Session(impersonate="chrome") as s:
        s.get(emu.url + "/")
        crumb = s.get(emu.url + "/v1/test/getcrumb").text
        r = s.get(
            emu.url + "/v7/finance/quote", params={"symbols": ",".join(symbols), "crumb": crumb}
        )
    return {q["symbol"]: q for q in r.json()["quoteResponse"]["result"]}


@pytest.mark.timeout(120)
def test_download_matches_what_the_emulator_serves(
    yf_isolated: None, emu: EmulatorThread, session: RewritingSession
) -> None:
    ny = dt.datetime.now(dt.UTC).astimezone(yf_tz()).date()
    start, end = ny - dt.timedelta(days=40), ny + dt.timedelta(days=1)
    df = yf.download(
        SYMBOLS, start=start, end=end, session=session, threads=False, progress=False,
        auto_adjust=False,
    )  # fmt: skip
    assert df is not None and not df.empty
    assert set(df["Close"].columns) == set(SYMBOLS)
    # the whole auth flow and both query hosts went through the rewrite
    # one cookie fetch, then reused from yfinance's cookie cache, as with real Yahoo (its A3
    # cookie is filed under .yahoo.com; the session mirrors that)
    assert session.hosts["fc.yahoo.com"] == 1
    assert session.hosts["query1.finance.yahoo.com"] == 1  # one getcrumb, then reused
    assert session.hosts["query2.finance.yahoo.com"] == 2 * len(SYMBOLS)  # tz + history
    stats = emu.stats()
    assert stats["requests"]["chart"] == {"200": 2 * len(SYMBOLS)}
    assert stats["requests"]["getcrumb"] == {"200": 1}

    p1 = int(dt.datetime.combine(start, dt.time(), yf_tz()).timestamp())
    p2 = int(dt.datetime.combine(end, dt.time(), yf_tz()).timestamp())
    quotes = _emulator_quotes(emu, SYMBOLS)
    for sym in SYMBOLS:
        served = _emulator_chart(emu, sym, p1, p2)
        q = served["indicators"]["quote"][0]
        got = df.xs(sym, axis=1, level="Ticker").dropna(how="all")
        assert len(got) == len(served["timestamp"]), sym
        np.testing.assert_allclose(got["Close"].to_numpy(), q["close"], rtol=1e-12)
        np.testing.assert_allclose(got["Open"].to_numpy(), q["open"], rtol=1e-12)
        np.testing.assert_allclose(got["Volume"].to_numpy(), q["volume"], rtol=0)
        np.testing.assert_allclose(got["Adj Close"].to_numpy(), q["close"], rtol=1e-12)
        # the last daily close is the live v7 price (float32 on the chart, like Yahoo's)
        assert got["Close"].iloc[-1] == pytest.approx(quotes[sym]["regularMarketPrice"], rel=1e-6)


def yf_tz() -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo("America/New_York")


@pytest.mark.timeout(60)
def test_yfinance_v7_quote_call_uses_cookie_and_crumb(
    yf_isolated: None, emu: EmulatorThread, session: RewritingSession
) -> None:
    data = YfData(session=session)
    body = data.get_raw_json(
        "https://query1.finance.yahoo.com/v7/finance/quote",
        params={"symbols": "AAPL,MSFT,NOPE", "formatted": "false", "lang": "en-US", "region": "US"},
    )
    result = body["quoteResponse"]["result"]
    assert [q["symbol"] for q in result] == ["AAPL", "MSFT"]
    served = _emulator_quotes(emu, ["AAPL", "MSFT"])
    assert result[0]["regularMarketPrice"] == served["AAPL"]["regularMarketPrice"]
    assert emu.stats()["requests"]["quote"]["200"] == 2


@pytest.mark.timeout(60)
def test_intraday_download_and_unknown_symbol(
    yf_isolated: None, emu: EmulatorThread, session: RewritingSession
) -> None:
    df = yf.download(
        ["AAPL"], period="1d", interval="5m", session=session, threads=False, progress=False
    )
    assert df is not None and len(df) > 0
    assert df.index.tz is not None and str(df.index.tz) == "America/New_York"
    empty = yf.download(["NOSUCHSYM"], period="5d", session=session, threads=False, progress=False)
    assert empty is not None and empty.dropna(how="all").empty


def _emulator_summary(emu: EmulatorThread, symbol: str, modules: str) -> dict[str, Any]:
    with curl.Session(impersonate="chrome") as s:
        s.get(emu.url + "/")
        crumb = s.get(emu.url + "/v1/test/getcrumb").text
        r = s.get(
            f"{emu.url}/v10/finance/quoteSummary/{symbol}",
            params={"modules": modules, "formatted": "false", "crumb": crumb},
        )
    assert r.status_code == 200
    res: dict[str, Any] = r.json()["quoteSummary"]["result"][0]
    return res


@pytest.mark.timeout(60)
def test_ticker_info_reads_quote_summary(
    yf_isolated: None, emu: EmulatorThread, session: RewritingSession
) -> None:
    info = yf.Ticker("MSFT", session=session).info
    served = _emulator_summary(
        emu, "MSFT", "financialData,quoteType,defaultKeyStatistics,assetProfile,summaryDetail"
    )
    stats, fin = served["defaultKeyStatistics"], served["financialData"]
    assert info["symbol"] == "MSFT"
    assert info["trailingEps"] == stats["trailingEps"]
    assert info["forwardEps"] == stats["forwardEps"]
    assert info["totalRevenue"] == fin["totalRevenue"]
    assert info["grossMargins"] == fin["grossMargins"]
    assert info["operatingMargins"] == fin["operatingMargins"]
    assert info["profitMargins"] == fin["profitMargins"]
    assert info["sector"] == served["assetProfile"]["sector"]
    assert info["maxAge"] == 86400  # yfinance turns maxAge 1 into 86400
    # the v7 quote part of info, and the {} of pegRatio left out by yfinance's flattening
    assert (
        info["regularMarketPrice"] == _emulator_quotes(emu, ["MSFT"])["MSFT"]["regularMarketPrice"]
    )
    assert info.get("trailingPegRatio") is None
    requests = emu.stats()["requests"]
    assert requests["quoteSummary"] == {"200": 2} and requests["timeseries"] == {"200": 1}


@pytest.mark.timeout(60)
def test_calendars_earnings_calendar(
    yf_isolated: None, emu: EmulatorThread, session: RewritingSession
) -> None:
    from yahoo_emulator.earnings import schedule_for
    from yahoo_emulator.screener import most_active
    from yahoo_emulator.universe import load_universe

    start = dt.date.today()
    end = start + dt.timedelta(days=7)
    cal = yf.Calendars(start=start, end=end, session=session)
    cfg = emu.running.config
    truth = schedule_for(cfg, start, end)
    assert len(truth) > 200

    # the default call: the 200 most active tickers first (screener), 12 rows by market cap
    df = cal.get_earnings_calendar()
    active = set(most_active(load_universe(), 200, frozenset(cfg.delisted)))
    expected = sorted(
        (e for e in truth if e.symbol in active and e.market_cap),
        key=lambda e: (-e.market_cap, e.symbol),
    )[:12]
    assert sorted(df.index) == sorted(e.symbol for e in expected)
    assert list(df.columns) == [
        "Company", "Marketcap", "Event Name", "Event Start Date", "Timing", "EPS Estimate",
        "Reported EPS", "Surprise(%)",
    ]  # fmt: skip
    by_symbol = {e.symbol: e for e in truth}
    for sym, row in df.iterrows():
        e = by_symbol[str(sym)]
        assert row["Timing"] == e.timing
        assert row["Event Start Date"].timestamp() == e.start
        if e.eps_estimate is not None:
            assert row["EPS Estimate"] == pytest.approx(e.eps_estimate)

    # the whole calendar, paged past the first 100 rows
    page2 = cal.get_earnings_calendar(filter_most_active=False, limit=100, offset=100)
    ordered = sorted(
        truth, key=lambda e: (e.market_cap == 0, -e.market_cap, e.symbol)
    )  # DESC by market cap, unknown caps last, ties by symbol
    assert sorted(page2.index) == sorted(e.symbol for e in ordered[100:200])
    requests = emu.stats()["requests"]
    assert requests["screener"] == {"200": 1} and requests["visualization"] == {"200": 2}
