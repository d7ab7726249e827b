"""Calendar page collection and the event projection."""

from __future__ import annotations

import msgspec
import pytest

from engine.earnings.cache import FlagValue
from engine.earnings.models import CalendarCollector, CalendarPage, RowIssue, project
from tests.unit.earnings.events import D1, D2, D3, ev


def test_collector_deduplicates_and_drops_events_outside_the_window() -> None:
    acc = CalendarCollector(D1, D2, "yahoo_calendar")
    issue = RowIssue(0, "X", "bad_symbol")
    acc.add(CalendarPage([ev("A", D1), ev("B", D3)], [issue], [], 2, 3))
    acc.add(CalendarPage([ev("A", D1), ev("C", D2)], [], [], 2, 3))
    out = acc.out
    assert [e.symbol for e in out.events] == ["A", "C"]
    assert (out.pages, out.duplicates, out.outside_window) == (2, 1, 1)
    assert out.rejections == [issue]


def test_project_copies_the_same_named_fields() -> None:
    e = ev("A", D1, eps_estimate=1.5, company_name="A Co")
    flag = project(e, FlagValue, schema_version=1)
    assert (flag.symbol, flag.event_date, flag.eps_estimate, flag.company_name) == (
        "A", D1, 1.5, "A Co",
    )  # fmt: skip
    with pytest.raises(msgspec.ValidationError):  # a field the event lacks must be given
        project(e, FlagValue)
