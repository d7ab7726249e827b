"""The emulator's earnings calendar, quoteSummary, screener and timeseries endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from tests.emulator.conftest import WED_1100, FakeClock, Harness, MakeEmu, Resp
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.earnings import earnings_schedule, schedule_for
from yahoo_emulator.screener import most_active
from yahoo_emulator.universe import load_universe
from yahoo_emulator.visualization import DEFAULT_FIELDS

TODAY = dt.date(2026, 11, 25)  # WED_1100 is Wednesday 25 November 2026, 11:00 New York
END = TODAY + dt.timedelta(days=7)


def query(start: dt.date = TODAY, end: dt.date = END) -> dict[str, Any]:
    return {
        "operator": "and",
        "operands": [
            {"operator": "eq", "operands": ["region", "us"]},
            {
                "operator": "or",
                "operands": [
                    {"operator": "eq", "operands": ["eventtype", "EAD"]},
                    {"operator": "eq", "operands": ["eventtype", "ERA"]},
                ],
            },
            {"operator": "gte", "operands": ["startdatetime", start.isoformat()]},
            {"operator": "lte", "operands": ["startdatetime", end.isoformat()]},
        ],
    }


def calendar_body(size: int = 100, offset: int = 0, **kw: Any) -> dict[str, Any]:
    return {
        "sortType": "ASC",
        "entityIdType": "sp_earnings",
        "sortField": "ticker",
        "includeFields": list(DEFAULT_FIELDS),
        "size": size,
        "offset": offset,
        "query": query(),
        **kw,
    }


async def visualize(h: Harness, payload: Any, crumb: str | None = None) -> Resp:
    params = {"lang": "en-US", "region": "US", "crumb": h.crumb if crumb is None else crumb}
    async with h.http.post(
        h.url + "/v1/finance/visualization",
        params=params,
        data=orjson.dumps(payload),
        headers={"Content-Type": "application/json"},
    ) as r:
        return Resp(r.status, r.headers, await r.read())


def result_of(r: Resp) -> dict[str, Any]:
    assert r.status == 200, r.body[:300]
    res: dict[str, Any] = r.json()["finance"]["result"][0]
    return res


async def summary(h: Harness, symbol: str, modules: str, **params: str) -> Resp:
    q = {"modules": modules, "crumb": h.crumb, "formatted": "false", **params}
    return await h.get(f"/v10/finance/quoteSummary/{symbol}", q)


@pytest.fixture
async def fixed(make_emu: MakeEmu) -> Any:
    clock = FakeClock(WED_1100)
    async with make_emu(clock=clock, seed=9) as h:
        await h.login()
        yield h, clock


# -- visualization ---------------------------------------------------------------------------


async def test_paging_covers_the_schedule_exactly(fixed: Any) -> None:
    h, clock = fixed
    truth = earnings_schedule(9, TODAY, END, exclude=EmulatorConfig().delisted)
    assert len(truth) > 300  # the whole universe reports, not 200 tickers
    rows: list[list[Any]] = []
    offset = 0
    while True:
        res = result_of(await visualize(h, calendar_body(offset=offset)))
        assert res["total"] == len(truth) and res["start"] == offset
        assert res["count"] == len(res["documents"][0]["rows"]) <= 100
        rows += res["documents"][0]["rows"]
        offset += res["count"]
        if offset >= res["total"]:
            break
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)  # sortField ticker ASC
    served = {(r[0], r[4], r[5], r[6], r[7], r[8]) for r in rows}
    now = clock()
    expected = {
        (e.symbol, e.start_iso, e.timing, e.eps_estimate, e.eps_actual(now), e.surprise_pct(now))
        for e in truth
    }
    assert served == expected


async def test_columns_and_the_duplicate_event_start_date(fixed: Any) -> None:
    h, _ = fixed
    fields = ["epsactual", "startdatetimetype", "ticker", "startdatetime", "nonsense"]
    doc = result_of(await visualize(h, calendar_body(size=5, includeFields=fields)))["documents"]
    cols = doc[0]["columns"]
    assert [c["id"] for c in cols] == fields[:4]
    assert [c["label"] for c in cols] == [
        "Reported EPS", "Event Start Date", "Symbol", "Event Start Date",
    ]  # fmt: skip
    assert [c["type"] for c in cols] == ["NUMBER", "STRING", "STRING", "DATETIME"]
    assert all(r[1] in ("BMO", "AMC", "TMC") for r in doc[0]["rows"])


async def test_eps_is_null_until_reported_then_appears(fixed: Any) -> None:
    h, clock = fixed
    amc_today = [
        e
        for e in earnings_schedule(9, TODAY, TODAY, exclude=EmulatorConfig().delisted)
        if e.timing == "AMC"
    ]
    assert amc_today
    symbols = {e.symbol for e in amc_today}

    async def reported() -> dict[str, Any]:
        res = result_of(await visualize(h, calendar_body(size=100, query=query(TODAY, TODAY))))
        return {r[0]: r[7] for r in res["documents"][0]["rows"] if r[0] in symbols}

    assert set((await reported()).values()) == {None}
    clock.advance(8 * 3600)  # 19:00 New York: every after-close report is out
    after = await reported()
    assert after == {e.symbol: e.eps_actual_value for e in amc_today}
    assert None not in after.values() and 0 not in after.values()


async def test_null_as_zero_knob(make_emu: MakeEmu) -> None:
    async with make_emu(clock=FakeClock(WED_1100), seed=9, earnings_null_as_zero=True) as h:
        await h.login()
        rows = result_of(await visualize(h, calendar_body()))["documents"][0]["rows"]
        future = [r for r in rows if r[4] > "2026-11-27"]
        assert future and all(r[7] == 0 and r[8] == 0 for r in future)


async def test_filters_sorting_and_limits(fixed: Any) -> None:
    h, _ = fixed
    ors = [{"operator": "eq", "operands": ["ticker", s]} for s in ("AAPL", "MSFT", "ZZZZ")]
    q = query(TODAY - dt.timedelta(days=120), TODAY + dt.timedelta(days=120))
    q["operands"].append({"operator": "or", "operands": ors})
    res = result_of(await visualize(h, calendar_body(query=q, sortField="startdatetime")))
    rows = res["documents"][0]["rows"]
    assert {r[0] for r in rows} <= {"AAPL", "MSFT"} and len(rows) >= 4
    assert [r[4] for r in rows] == sorted(r[4] for r in rows)
    desc = calendar_body(size=20, sortField="intradaymarketcap", sortType="DESC")
    caps = [r[2] for r in result_of(await visualize(h, desc))["documents"][0]["rows"]]
    assert caps == sorted(caps, reverse=True)
    for bad in (
        calendar_body(size=101),
        calendar_body(size=0),
        calendar_body(offset=-1),
        calendar_body(entityIdType="ipo_info"),
        calendar_body(query={"operator": "frobnicate", "operands": ["ticker", 1]}),
        [1, 2],
    ):
        r = await visualize(h, bad)
        assert r.status == 400, bad
        assert r.json()["finance"]["error"]["code"] == "Bad Request"
    r = await visualize(h, calendar_body(), crumb="wrong")
    assert r.status == 401 and r.json()["finance"]["error"]["description"] == "Invalid Crumb"


async def test_reschedule_knob_moves_a_deterministic_subset(fixed: Any) -> None:
    h, _ = fixed
    plain = {e.symbol: e.day for e in schedule_for(EmulatorConfig(seed=9), TODAY, END)}
    h.emu.configure(earnings_reschedule=0.3, earnings_reschedule_days=2)
    moved_cfg = EmulatorConfig(seed=9, earnings_reschedule=0.3, earnings_reschedule_days=2)
    moved = schedule_for(moved_cfg, TODAY, END)
    res = result_of(await visualize(h, calendar_body(size=100)))
    assert res["total"] == len(moved)
    shifted = [e for e in moved if e.original_day is not None]
    assert shifted and all((e.day - e.original_day).days >= 2 for e in shifted)  # type: ignore[operator]
    both = [e for e in shifted if e.symbol in plain and plain[e.symbol] == e.original_day]
    assert both  # events that were in the window before and still are, at a new date


# -- quoteSummary ------------------------------------------------------------------------------


async def test_quote_summary_plain_modules_and_empty_objects(fixed: Any) -> None:
    h, _ = fixed
    r = await summary(h, "AAPL", "defaultKeyStatistics,financialData,earnings,price")
    assert r.status == 200
    res = r.json()["quoteSummary"]["result"][0]
    assert list(res) == ["defaultKeyStatistics", "financialData", "earnings", "price"]
    stats, fin = res["defaultKeyStatistics"], res["financialData"]
    assert isinstance(stats["trailingEps"], int | float) and stats["pegRatio"] == {}
    assert stats["maxAge"] == 1 and fin["maxAge"] == 86400
    assert 0 < fin["grossMargins"] < 1 and fin["operatingMargins"] < fin["grossMargins"]
    assert isinstance(fin["totalRevenue"], int)  # whole numbers without ".0"
    assert abs(res["price"]["regularMarketChangePercent"]) < 1  # a fraction here
    quarterly = res["earnings"]["earningsChart"]["quarterly"]
    assert len(quarterly) == 4 and quarterly[-1]["date"][1] == "Q"
    quote = (await h.quotes(["AAPL"], fields="epsTrailingTwelveMonths"))[0]
    assert stats["trailingEps"] == quote["epsTrailingTwelveMonths"]


async def test_quote_summary_raw_fmt_modules(fixed: Any) -> None:
    h, _ = fixed
    r = await summary(h, "MSFT", "earningsHistory,assetProfile")
    hist = r.json()["quoteSummary"]["result"][0]["earningsHistory"]["history"]
    entry = hist[-1]
    assert set(entry["epsActual"]) == {"raw", "fmt"} and entry["period"] == "-1q"
    assert set(entry["quarter"]) == {"raw", "fmt"} and len(entry["quarter"]["fmt"]) == 10
    formatted = await summary(h, "MSFT", "financialData", formatted="true")
    fin = formatted.json()["quoteSummary"]["result"][0]["financialData"]
    assert fin["totalRevenue"]["longFmt"].count(",") >= 2
    assert fin["grossMargins"]["fmt"].endswith("%") and fin["maxAge"] == 86400


async def test_quote_summary_calendar_events_agree_with_the_calendar(fixed: Any) -> None:
    h, clock = fixed
    events = schedule_for(EmulatorConfig(seed=9), TODAY, END)
    e = next(e for e in events if e.timing != "TMC" and not e.reported(clock()))
    r = await summary(h, e.symbol, "calendarEvents")
    cal = r.json()["quoteSummary"]["result"][0]["calendarEvents"]["earnings"]
    assert cal["earningsDate"] == [e.start] and cal["isEarningsDateEstimate"] is False
    assert cal["earningsAverage"] == (e.eps_estimate if e.eps_estimate is not None else {})


async def test_quote_summary_errors(fixed: Any) -> None:
    h, _ = fixed
    r = await summary(h, "NOSUCH", "price")
    assert r.status == 404
    assert r.json()["quoteSummary"]["error"] == {
        "code": "Not Found",
        "description": "Quote not found for ticker symbol: NOSUCH",
    }
    assert (await summary(h, "BRKS", "price")).status == 404  # delisted
    r = await summary(h, "AAPL", "esgScores,secFilings")
    assert r.status == 404
    assert (
        "No fundamentals data found for any of the summaryTypes=esgScores,secFilings"
        in (r.json()["quoteSummary"]["error"]["description"])
    )
    assert (await summary(h, "AAPL", "")).status == 400
    r = await h.get("/v10/finance/quoteSummary/AAPL", {"modules": "price", "crumb": "bad"})
    assert r.status == 401
    u = load_universe()
    unscheduled = next(
        s for s in ("AAPL", *u.symbols[:400]) if not _has_schedule(s)
    )  # a stock without an earnings schedule has no earnings module
    r = await summary(h, unscheduled, "earnings")
    assert r.status == 404


def _has_schedule(symbol: str) -> bool:
    from yahoo_emulator.earnings import symbol_events

    u = load_universe()
    return bool(symbol_events(9, u.index[symbol], TODAY, TODAY + dt.timedelta(days=200)))


async def test_fault_knobs_reach_the_new_endpoints(make_emu: MakeEmu) -> None:
    async with make_emu(
        clock=FakeClock(WED_1100), fault_5xx=1.0, fault_endpoints=["visualization"]
    ) as h:
        await h.login()
        assert (await visualize(h, calendar_body())).status >= 500
        assert (await summary(h, "AAPL", "price")).status == 200
        stats = h.stats()["requests"]
        assert "visualization" in stats and stats["quoteSummary"] == {"200": 1}


# -- screener and timeseries -----------------------------------------------------------------


async def test_most_actives_screen(fixed: Any) -> None:
    h, _ = fixed
    r = await h.get(
        "/v1/finance/screener/predefined/saved",
        {"scrIds": "MOST_ACTIVES", "count": "200", "crumb": h.crumb},
    )
    res = r.json()["finance"]["result"][0]
    assert [q["symbol"] for q in res["quotes"]] == most_active(
        load_universe(), 200, frozenset(EmulatorConfig().delisted)
    )
    assert res["count"] == 200 and res["total"] > 5000
    r = await h.get(
        "/v1/finance/screener/predefined/saved", {"scrIds": "MOST_ACTIVES", "count": "251",
                                                  "crumb": h.crumb}
    )  # fmt: skip
    assert r.status == 400


async def test_timeseries_answers_no_data(fixed: Any) -> None:
    h, _ = fixed
    r = await h.get(
        "/ws/fundamentals-timeseries/v1/finance/timeseries/AAPL",
        {"symbol": "AAPL", "type": "trailingPegRatio,quarterlyTotalRevenue"},
    )
    result = r.json()["timeseries"]["result"]
    assert result == [
        {"meta": {"symbol": ["AAPL"], "type": ["trailingPegRatio"]}},
        {"meta": {"symbol": ["AAPL"], "type": ["quarterlyTotalRevenue"]}},
    ]
