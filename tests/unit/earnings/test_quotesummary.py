"""quoteSummary parsing: fundamentals and the calendar fallback (pure)."""

from __future__ import annotations

import datetime as dt
import json

from engine.earnings.quotesummary import parse_calendar_events, parse_fundamentals
from tests.unit.earnings.events import FETCHED

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
