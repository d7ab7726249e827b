"""Calendar page parsing (columns, rows, zero and null EPS) and the request body (pure)."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import pytest

from engine.earnings.calendar import calendar_request, parse_calendar_page
from engine.earnings.models import CalendarPage, EarningsEvent
from engine.errors import UpstreamPayloadError
from tests.unit.earnings.events import FETCHED

# id, label, type - as the emulator and Yahoo send them
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
