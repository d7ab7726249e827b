"""``earnings sync``'s summary text."""

from __future__ import annotations

import datetime as dt

from engine.commands.earnings import format_report
from engine.earnings.models import RowIssue, SyncStatus, Trigger
from engine.earnings.report import SyncReport

DAY = dt.date(2026, 11, 25)


def test_a_current_sync_shows_flags_events_and_fundamentals() -> None:
    report = SyncReport(
        sync_date=DAY,
        trigger=Trigger.MANUAL,
        status=SyncStatus.COMPLETE,
        source="yahoo_calendar",
        fetch_start=dt.date(2026, 11, 24),
        fetch_end=dt.date(2026, 12, 2),
        fetched=12,
        flags_set=3,
        rejections=[RowIssue(1, "BAD", "bad_symbol", "symbol: invalid")],
    )
    text = format_report(report)
    assert text.startswith("earnings sync 2026-11-25 (manual): COMPLETE")
    assert "2026-11-24 .. 2026-12-02" in text and "12 events" in text
    assert "3 set" in text and "fundamentals" in text
    assert "rejected row  BAD: bad_symbol symbol: invalid" in text


def test_a_past_failed_sync_shows_the_error_and_no_flags() -> None:
    report = SyncReport(
        sync_date=DAY,
        trigger=Trigger.MANUAL,
        current=False,
        fallback_used=True,
        source="yahoo_quotesummary",
        error="boom",
        error_kind="StoreError",
    )
    text = format_report(report)
    assert "FAILED" in text and "(fallback)" in text and "not today" in text
    assert not any(line.startswith("  flags") for line in text.splitlines())
    assert "error         StoreError: boom" in text
