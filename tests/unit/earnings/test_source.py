"""Calendar and quoteSummary parsing, upsert planning, flag/hash/message encoding (pure)."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine.earnings.cache import analysis_fields, flags_for
from engine.earnings.calendar import calendar_request, parse_calendar_page
from engine.earnings.models import CalendarPage, EarningsEvent, Fundamentals
from engine.earnings.plan import merge, plan_upsert
from engine.earnings.publish import build_message, message_id
from engine.earnings.quotesummary import parse_calendar_events, parse_fundamentals
from engine.earnings.values import BadValue, normalize_timing, number
from engine.errors import UpstreamPayloadError

ROOT = Path(__file__).resolve().parents[3]
FETCHED = dt.datetime(2026, 11, 25, 16, 0, tzinfo=dt.UTC)  # 11:00 New York

# id, label, type - as the emulator and (per the fact sheet) Yahoo send them
COLS: list[tuple[str, str, str]] = [
    ("ticker", "Symbol", "STRING"),
    ("companyshortname", "Company Name", "STRING"),
    ("intradaymarketcap", "Market Cap (Intraday)", "NUMBER"),
    ("eventname", "Event Name", "STRING"),
    ("startdatetime", "Event Start Date", "DATETIME"),
    ("startdatetimetype", "Event Start Date", "STRING"),
    ("epsestimate", "EPS Estimate", "NUMBER"),
    ("epsactual", "Reported EPS", "NUMBER"),
    ("epssurprisepct", "Surprise (%)", "NUMBER"),
]
ROWS: list[dict[str, Any]] = [
    {
        "ticker": "AAPL", "companyshortname": "Apple Inc.", "intradaymarketcap": 3.6e12,
        "eventname": "Q3 2026 Earnings Release", "startdatetime": "2026-11-24T21:05:00.000Z",
        "startdatetimetype": "AMC", "epsestimate": 1.52, "epsactual": 1.61,
        "epssurprisepct": 5.92,
    },
    {
        "ticker": "JPM", "companyshortname": "JPMorgan Chase", "intradaymarketcap": 6.1e11,
        "eventname": "Q3 2026 Earnings Release", "startdatetime": "2026-11-27T12:30:00.000Z",
        "startdatetimetype": "BMO", "epsestimate": 4.1, "epsactual": None,
        "epssurprisepct": None,
    },
    {
        "ticker": "brk-b", "companyshortname": "Berkshire", "intradaymarketcap": None,
        "eventname": None, "startdatetime": "2026-12-01T05:00:00.000Z",
        "startdatetimetype": "TMC", "epsestimate": None, "epsactual": None,
        "epssurprisepct": None,
    },
]  # fmt: skip


def body(
    cols: list[tuple[str, str, str]] = COLS,
    rows: list[dict[str, Any]] = ROWS,
    *,
    ids: bool = True,
    total: int | None = None,
    extra_cells: dict[str, Any] | None = None,
) -> bytes:
    """A visualization answer with ``cols`` in that order (rows built by column id)."""
    columns = [
        {"id": c, "label": label, "type": t} if ids else {"label": label, "type": t}
        for c, label, t in cols
    ]
    out_rows = [[{**r, **(extra_cells or {})}.get(c) for c, _, _ in cols] for r in rows]
    result: dict[str, Any] = {
        "documents": [{"entityIdType": "sp_earnings", "columns": columns, "rows": out_rows}]
    }
    if total is not None:
        result["total"] = total
    return json.dumps({"finance": {"result": [result], "error": None}}).encode()


def parse(raw: bytes) -> CalendarPage:
    return parse_calendar_page(raw, fetched_at=FETCHED)


def by_symbol(page: CalendarPage) -> dict[str, EarningsEvent]:
    return {e.symbol: e for e in page.events}


# -- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (-0.25, -0.25),
        ("1,234.5", 1234.5),
        ("12.5%", 12.5),
        ({"raw": 94051000320, "fmt": "94.05B"}, 94051000320.0),
        ({"raw": 0, "fmt": None, "longFmt": "0"}, 0.0),
        ({}, None),
        ({"raw": None}, None),
        (None, None),
        ("NaN", None),
        ("-", None),
        (float("inf"), None),
        (float("nan"), None),
    ],
)
def test_number_accepts_yahoo_shapes(value: Any, expected: float | None) -> None:
    assert number(value) == expected


@pytest.mark.parametrize("value", [True, "abc", [1], {"raw": "x"}])
def test_number_rejects_garbage(value: Any) -> None:
    with pytest.raises(BadValue):
        number(value)


# -- columns -----------------------------------------------------------------------------------


def test_standard_page() -> None:
    page = parse(body(total=3))
    assert page.rows == 3 and page.total == 3 and not page.rejections and not page.warnings
    ev = by_symbol(page)
    aapl = ev["AAPL"]
    assert aapl.event_time == dt.datetime(2026, 11, 24, 21, 5, tzinfo=dt.UTC)
    assert aapl.event_date == dt.date(2026, 11, 24)
    assert (aapl.timing, aapl.eps_estimate, aapl.eps_reported, aapl.surprise_pct) == (
        "AMC", 1.52, 1.61, 5.92,
    )  # fmt: skip
    assert aapl.market_cap == 3_600_000_000_000 and aapl.company_name == "Apple Inc."
    assert ev["JPM"].eps_reported is None and ev["JPM"].surprise_pct is None
    brk = ev["BRK-B"]  # upper-cased
    assert brk.market_cap is None and brk.event_name is None and brk.timing == "TMC"


def test_reordered_columns_are_read_by_id() -> None:
    shuffled = COLS[:]
    random.Random(7).shuffle(shuffled)
    assert shuffled != COLS
    assert parse(body(shuffled)).events == parse(body()).events


def test_columns_by_label_alone_and_duplicate_label_told_apart_by_type() -> None:
    # no ids at all, and the STRING "Event Start Date" column placed before the date column
    cols = [*COLS[:4], COLS[5], COLS[4], *COLS[6:]]
    assert parse(body(cols, ids=False)).events == parse(body()).events


def test_yfinance_renamed_labels_are_understood() -> None:
    cols = [
        ("", "Symbol", "STRING"),
        ("", "Company", "STRING"),
        ("", "Event Start Date", "DATETIME"),
        ("", "Timing", "STRING"),
        ("", "Surprise(%)", "NUMBER"),
    ]
    raw = {
        "finance": {
            "result": [
                {
                    "documents": [
                        {
                            "columns": [{"label": lb, "type": t} for _, lb, t in cols],
                            "rows": [["AAPL", "Apple", "2026-11-24T21:05:00Z", "AMC", 5.9]],
                        }
                    ]
                }
            ],
            "error": None,
        }
    }
    page = parse(json.dumps(raw).encode())
    (ev,) = page.events
    assert (ev.symbol, ev.company_name, ev.timing, ev.eps_reported, ev.surprise_pct) == (
        "AAPL", "Apple", "AMC", None, None,  # no reported EPS column: no surprise either
    )  # fmt: skip


def test_missing_optional_columns_give_none_and_extra_columns_are_ignored() -> None:
    cols = [c for c in COLS if c[0] not in ("epsactual", "epssurprisepct", "companyshortname")]
    cols = [("eventtype", "Event Type", "STRING"), *cols, ("whatever", "Whatever", "NUMBER")]
    page = parse(body(cols, extra_cells={"eventtype": "ERA", "whatever": 42}))
    assert not page.rejections and not page.warnings
    aapl = by_symbol(page)["AAPL"]
    assert aapl.eps_reported is None and aapl.company_name is None and aapl.eps_estimate == 1.52


@pytest.mark.parametrize("missing", ["ticker", "startdatetime"])
def test_missing_required_column_fails_the_page(missing: str) -> None:
    with pytest.raises(UpstreamPayloadError, match="lacks column"):
        parse(body([c for c in COLS if c[0] != missing]))


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"finance": {"result": null, "error": {"code": "Bad Request", "description": "x"}}}',
        b'{"finance": {"result": [], "error": null}}',
        b'{"finance": {"result": [{"documents": []}], "error": null}}',
        b"<html>Will be right back</html>",
    ],
)
def test_unusable_bodies_raise_payload_errors(raw: bytes) -> None:
    with pytest.raises(UpstreamPayloadError):
        parse(raw)


def test_bad_rows_are_rejected_with_reasons_and_the_rest_kept() -> None:
    rows = [
        ROWS[0],
        {**ROWS[1], "ticker": None},
        {**ROWS[1], "ticker": "BAD SYMBOL"},
        {**ROWS[1], "ticker": "DATE", "startdatetime": "next tuesday"},
        {**ROWS[1], "ticker": "NODATE", "startdatetime": None},
        {**ROWS[1], "ticker": "NUM", "epsestimate": "n/a-ish"},
    ]
    raw = json.loads(body(rows=rows))
    raw["finance"]["result"][0]["documents"][0]["rows"].append(["SHORT", "row"])
    page = parse(json.dumps(raw).encode())
    reasons = {(r.row, r.reason) for r in page.rejections}
    assert reasons == {
        (1, "bad_symbol"),
        (2, "bad_symbol"),
        (3, "bad_start"),
        (4, "bad_start"),
        (6, "row_shape"),
    }
    assert {e.symbol for e in page.events} == {"AAPL", "NUM"}
    (warning,) = page.warnings
    assert warning.symbol == "NUM" and "eps_estimate" in warning.detail
    assert by_symbol(page)["NUM"].eps_estimate is None


# -- timing ------------------------------------------------------------------------------------

AT_0700_NY = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
AT_2000_NY = dt.datetime(2026, 11, 25, 1, 0, tzinfo=dt.UTC)
AT_1200_NY = dt.datetime(2026, 11, 24, 17, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("code", "start", "timing", "warns"),
    [
        ("BMO", AT_2000_NY, "BMO", False),
        ("amc", AT_0700_NY, "AMC", False),
        ("TMC", AT_0700_NY, "TMC", False),
        ("DMH", AT_0700_NY, "DMH", False),
        (" bmo ", AT_0700_NY, "BMO", False),
        ("TNS", AT_0700_NY, "TMC", False),
        ("", AT_0700_NY, "TMC", False),
        (None, AT_0700_NY, "TMC", False),
        ("TAS", AT_0700_NY, "BMO", False),
        ("TAS", AT_2000_NY, "AMC", False),
        ("TAS", AT_1200_NY, "DMH", False),
        ("XYZ", AT_0700_NY, "TMC", True),
        (3, AT_0700_NY, "TMC", True),
    ],
)
def test_timing_codes(code: Any, start: dt.datetime, timing: str, warns: bool) -> None:
    got, warning = normalize_timing(code, start)
    assert got == timing
    assert (warning is not None) == warns


def test_event_date_is_the_new_york_date() -> None:
    rows = [{**ROWS[1], "startdatetime": "2026-03-10T03:30:00Z"}]  # 23:30 New York, 9 March
    (ev,) = parse(body(rows=rows)).events
    assert ev.event_date == dt.date(2026, 3, 9)
    rows = [{**ROWS[1], "startdatetime": "2026-03-09T23:30:00-04:00"}]  # offset form
    (ev,) = parse(body(rows=rows)).events
    assert ev.event_time == dt.datetime(2026, 3, 10, 3, 30, tzinfo=dt.UTC)


def test_unconfirmed_midnight_utc_is_a_bare_date() -> None:
    rows = [{**ROWS[1], "startdatetime": "2026-11-27T00:00:00.000Z", "startdatetimetype": "TNS"}]
    (ev,) = parse(body(rows=rows)).events
    assert (ev.event_date, ev.timing) == (dt.date(2026, 11, 27), "TMC")
    rows = [{**ROWS[1], "startdatetime": "2026-11-27T00:00:00.000Z", "startdatetimetype": "AMC"}]
    (ev,) = parse(body(rows=rows)).events  # a confirmed 19:00 New York report of the 26th
    assert ev.event_date == dt.date(2026, 11, 26)


# -- null / zero EPS ---------------------------------------------------------------------------


def one(**cells: Any) -> EarningsEvent:
    (ev,) = parse(body(rows=[{**ROWS[0], **cells}])).events
    return ev


def test_unreported_eps_is_null() -> None:
    ev = one(epsactual=None, epssurprisepct=None)
    assert ev.eps_reported is None and ev.surprise_pct is None


def test_zero_estimate_is_missing() -> None:
    assert one(epsestimate=0).eps_estimate is None


def test_zero_reported_eps_is_a_placeholder_unless_a_surprise_proves_it() -> None:
    future = "2026-11-27T21:05:00.000Z"
    assert one(epsactual=0, epssurprisepct=0).eps_reported is None  # yfinance's "0 = NaN"
    assert one(epsactual=0, epssurprisepct=None).eps_reported is None
    assert one(startdatetime=future, epsactual=0, epssurprisepct=-100).eps_reported is None
    genuine = one(epsactual=0, epssurprisepct=-100)  # $0.00 against an estimate of $1.52
    assert genuine.eps_reported == 0.0 and genuine.surprise_pct == -100


def test_surprise_without_reported_eps_is_dropped() -> None:
    assert one(epsactual=None, epssurprisepct=12.5).surprise_pct is None


def test_request_body_asks_for_the_whole_calendar() -> None:
    req = calendar_request(dt.date(2026, 11, 24), dt.date(2026, 12, 2), 100, 200)
    assert (req["size"], req["offset"], req["entityIdType"]) == (100, 200, "sp_earnings")
    flat = json.dumps(req["query"])
    assert '"ticker"' not in flat  # no most-actives filter
    assert {"operator": "GTE", "operands": ["startdatetime", "2026-11-24"]} in req["query"][
        "operands"
    ]
    assert set(req["includeFields"]) == {c for c, _, _ in COLS}


# -- quoteSummary ------------------------------------------------------------------------------

PLAIN_SUMMARY = {
    "quoteSummary": {
        "result": [
            {
                "defaultKeyStatistics": {
                    "maxAge": 1, "trailingEps": 6.31, "forwardEps": 8.31, "pegRatio": {},
                },
                "financialData": {
                    "maxAge": 86400, "totalRevenue": 395760009216, "grossMargins": 0.465,
                    "operatingMargins": 0.345, "profitMargins": 0.243,
                    "financialCurrency": "USD",
                },
                "earnings": {
                    "earningsChart": {
                        "quarterly": [
                            {"date": "3Q2026", "actual": 1.4, "estimate": 1.35},
                            {"date": "4Q2026", "actual": 2.4, "estimate": 2.35},
                        ]
                    }
                },
            }
        ],
        "error": None,
    }
}  # fmt: skip


def test_fundamentals_plain_values() -> None:
    f = parse_fundamentals("AAPL", json.dumps(PLAIN_SUMMARY).encode(), fetched_at=FETCHED)
    assert (f.eps_trailing, f.eps_forward, f.revenue) == (6.31, 8.31, 395760009216.0)
    assert (f.gross_margin, f.operating_margin, f.profit_margin) == (0.465, 0.345, 0.243)
    assert (f.latest_quarter, f.latest_quarter_eps_actual, f.latest_quarter_eps_estimate) == (
        "4Q2026", 2.4, 2.35,
    )  # fmt: skip
    assert f.currency == "USD" and f.available


def test_fundamentals_raw_fmt_and_empty_objects() -> None:
    doc = json.loads(json.dumps(PLAIN_SUMMARY))
    res = doc["quoteSummary"]["result"][0]
    res["defaultKeyStatistics"]["trailingEps"] = {"raw": 6.31, "fmt": "6.31"}
    res["defaultKeyStatistics"]["forwardEps"] = {}
    res["financialData"]["totalRevenue"] = {"raw": 1000, "fmt": "1k", "longFmt": "1,000"}
    res["financialData"]["grossMargins"] = "NaN"
    res["financialData"]["operatingMargins"] = {"raw": 0, "fmt": None}
    res["earnings"]["earningsChart"]["quarterly"][-1]["estimate"] = {}
    res["financialData"]["profitMargins"] = {}
    res["defaultKeyStatistics"]["profitMargins"] = 0.2
    f = parse_fundamentals("AAPL", json.dumps(doc).encode(), fetched_at=FETCHED)
    assert (f.eps_trailing, f.eps_forward, f.revenue, f.gross_margin) == (6.31, None, 1000.0, None)
    assert f.operating_margin == 0.0 and f.profit_margin == 0.2
    assert f.latest_quarter_eps_estimate is None and f.latest_quarter_eps_actual == 2.4


def test_fundamentals_with_missing_modules() -> None:
    doc = {"quoteSummary": {"result": [{"financialData": {"totalRevenue": 5}}], "error": None}}
    f = parse_fundamentals("X", json.dumps(doc).encode(), fetched_at=FETCHED)
    assert f.revenue == 5.0 and f.eps_trailing is None and f.latest_quarter is None


def test_calendar_events_fallback_parsing() -> None:
    def doc(dates: list[int], estimate: bool) -> bytes:
        return json.dumps(
            {
                "quoteSummary": {
                    "result": [
                        {
                            "calendarEvents": {
                                "earnings": {
                                    "earningsDate": dates,
                                    "isEarningsDateEstimate": estimate,
                                    "earningsAverage": 1.1,
                                }
                            },
                            "price": {"shortName": "Apple", "marketCap": {"raw": 5, "fmt": "5"}},
                        }
                    ],
                    "error": None,
                }
            }
        ).encode()

    amc = int(dt.datetime(2026, 12, 1, 21, 5, tzinfo=dt.UTC).timestamp())
    ev = parse_calendar_events("AAPL", doc([amc], False))
    assert ev is not None
    assert (ev.timing, ev.event_date, ev.eps_estimate, ev.company_name, ev.market_cap) == (
        "AMC", dt.date(2026, 12, 1), 1.1, "Apple", 5,
    )  # fmt: skip
    est = parse_calendar_events("AAPL", doc([amc, amc + 3 * 86400], True))
    assert est is not None and est.timing == "TMC"
    assert parse_calendar_events("AAPL", doc([], False)) is None


# -- upsert planning ---------------------------------------------------------------------------


def ev(symbol: str, day: dt.date, hour: int = 21, **kw: Any) -> EarningsEvent:
    t = dt.datetime.combine(day, dt.time(hour, 5), dt.UTC)
    base: dict[str, Any] = {"timing": "AMC", "event_name": "Q3 2026 Earnings Release"}
    return EarningsEvent(symbol=symbol, event_date=day, event_time=t, **{**base, **kw})


D1, D2, D3 = dt.date(2026, 11, 25), dt.date(2026, 11, 27), dt.date(2026, 12, 1)


def test_plan_insert_update_unchanged() -> None:
    stored = [ev("A", D1, eps_estimate=1.0), ev("B", D1, eps_estimate=2.0)]
    fetched = [ev("A", D1, eps_estimate=1.0), ev("B", D1, eps_estimate=2.5), ev("C", D2)]
    plan = plan_upsert(stored, fetched)
    assert plan.unchanged == 1
    assert [e.symbol for e in plan.updates] == ["B"]
    assert [e.symbol for e in plan.inserts] == ["C"]
    assert not plan.moves and not plan.time_changes


def test_missing_values_never_erase_known_ones() -> None:
    old = ev("A", D1, eps_estimate=1.0, eps_reported=1.2, surprise_pct=20.0, company_name="A Co")
    new = ev("A", D1, source="yahoo_quotesummary")
    merged = merge(old, new)
    assert (merged.eps_reported, merged.surprise_pct, merged.company_name) == (1.2, 20.0, "A Co")
    assert merged.source == "yahoo_quotesummary"
    same = ev("A", D1, eps_estimate=1.0, eps_reported=1.2, surprise_pct=20.0, company_name="A Co")
    assert plan_upsert([old], [same]).unchanged == 1


def test_reschedule_moves_the_row() -> None:
    stored = [ev("A", D1), ev("B", D1)]
    plan = plan_upsert(stored, [ev("A", D3), ev("B", D1)])
    (move,) = plan.moves
    assert (move.old.event_date, move.new.event_date) == (D1, D3)
    assert plan.unchanged == 1 and not plan.inserts


def test_no_move_when_the_old_row_is_reported_far_or_another_event() -> None:
    far = D1 + dt.timedelta(days=60)
    assert not plan_upsert([ev("A", D1, eps_reported=1.0)], [ev("A", D3)]).moves
    assert not plan_upsert([ev("A", D1)], [ev("A", far)]).moves
    other = ev("A", D3, event_name="Q4 2026 Earnings Release")
    assert not plan_upsert([ev("A", D1)], [other]).moves
    # both dates confirmed by this fetch: two events, no move
    both = plan_upsert([ev("A", D1)], [ev("A", D1), ev("A", D3)])
    assert not both.moves and [e.event_date for e in both.inserts] == [D3]


def test_time_change_on_the_same_date_is_an_update_and_recorded() -> None:
    plan = plan_upsert([ev("A", D1, hour=21)], [ev("A", D1, hour=12, timing="BMO")])
    assert [e.timing for e in plan.updates] == ["BMO"]
    (change,) = plan.time_changes
    assert change.old.event_time.hour == 21 and change.new.event_time.hour == 12


# -- flags, hashes, messages -------------------------------------------------------------------


def test_flags_take_each_symbols_earliest_event() -> None:
    flags = flags_for([ev("A", D3), ev("A", D1), ev("B", D2, eps_estimate=0.5)])
    assert list(flags) == ["A", "B"]
    assert flags["A"].event_date == D1 and flags["B"].eps_estimate == 0.5
    decoded = json.loads(msgspec.json.encode(flags["B"]))
    assert decoded["event_date"] == "2026-11-27" and decoded["timing"] == "AMC"


def test_analysis_hash_leaves_out_missing_values() -> None:
    fields = analysis_fields(
        Fundamentals(symbol="A", fetched_at=FETCHED, eps_trailing=1.5, revenue=1e9)
    )
    assert fields["eps_trailing"] == "1.5" and fields["revenue"] == "1000000000.0"
    assert fields["fetched_at"] == "2026-11-25T16:00:00Z" and fields["available"] == "1"
    assert "eps_forward" not in fields and "gross_margin" not in fields


def test_messages_match_the_json_schema() -> None:
    schema = json.loads((ROOT / "schemas" / "earnings_reported.v1.schema.json").read_text())
    e = ev("AAPL", D1, eps_estimate=1.0, eps_reported=1.1, surprise_pct=10.0, company_name="A")
    msg = json.loads(msgspec.json.encode(build_message("eps_reported", e, D1, FETCHED)))
    assert set(msg) == set(schema["required"]) == set(schema["properties"])
    kinds: dict[str, tuple[type, ...]] = {
        "string": (str,),
        "number": (int, float),
        "null": (type(None),),
        "integer": (int,),
    }
    for key, spec in schema["properties"].items():
        if "enum" in spec:
            assert msg[key] in spec["enum"], key
        elif "const" in spec:
            assert msg[key] == spec["const"]
        else:
            types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
            allowed = tuple(k for t in types for k in kinds[t])
            assert isinstance(msg[key], allowed), key
    dt.date.fromisoformat(msg["event_date"])
    dt.datetime.fromisoformat(msg["event_time"].replace("Z", "+00:00"))
    assert message_id("eps_reported", e) == "earnings:eps_reported:AAPL:2026-11-25"
