"""Readers of Yahoo's values: numbers, instants, timing codes, event dates."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from engine.earnings.values import (
    BadValue,
    event_day,
    lenient,
    normalize_timing,
    number,
    parse_instant,
    text,
)


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


def test_lenient_reads_garbage_as_missing() -> None:
    assert lenient("abc") is None and lenient({"raw": 2}) == 2.0


def test_text_strips_and_drops_empty() -> None:
    assert (text("  Apple "), text("   "), text(None), text(5)) == ("Apple", None, None, "5")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-24T21:05:00.000Z", dt.datetime(2026, 11, 24, 21, 5, tzinfo=dt.UTC)),
        ("2026-11-24T16:05:00-05:00", dt.datetime(2026, 11, 24, 21, 5, tzinfo=dt.UTC)),
        ("2026-11-24T21:05:00", dt.datetime(2026, 11, 24, 21, 5, tzinfo=dt.UTC)),  # naive = UTC
        (1795554300, dt.datetime(2026, 11, 24, 21, 5, tzinfo=dt.UTC)),
        (1795554300000, dt.datetime(2026, 11, 24, 21, 5, tzinfo=dt.UTC)),  # milliseconds
        ({"raw": 1795554300, "fmt": "x"}, dt.datetime(2026, 11, 24, 21, 5, tzinfo=dt.UTC)),
    ],
)
def test_parse_instant_reads_iso_and_epochs(value: Any, expected: dt.datetime) -> None:
    assert parse_instant(value) == expected


@pytest.mark.parametrize("value", [None, True, "next tuesday", [1], 1e300])
def test_parse_instant_rejects_non_dates(value: Any) -> None:
    with pytest.raises(BadValue):
        parse_instant(value)


def test_event_day_is_new_york_except_an_unconfirmed_midnight_utc() -> None:
    late = dt.datetime(2026, 3, 10, 3, 30, tzinfo=dt.UTC)  # 23:30 New York, 9 March
    assert event_day(late, "AMC") == dt.date(2026, 3, 9)
    midnight = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    assert event_day(midnight, "TMC") == dt.date(2026, 11, 27)
    assert event_day(midnight, "AMC") == dt.date(2026, 11, 26)
