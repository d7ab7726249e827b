"""The sync report: upsert counts and the log fields."""

from __future__ import annotations

from engine.earnings.models import SyncStatus, Trigger
from engine.earnings.plan import Move
from engine.earnings.report import SyncReport, count_upsert, log_fields
from engine.earnings.store import UpsertResult
from tests.unit.earnings.events import D1, D3, ev


def test_count_upsert_copies_the_counts() -> None:
    report = SyncReport(sync_date=D1, trigger=Trigger.MANUAL)
    move = Move(ev("A", D1), ev("A", D3))
    count_upsert(report, UpsertResult(3, 2, 1, [move], [move, move]))
    assert (report.inserted, report.updated, report.unchanged) == (3, 2, 1)
    assert (report.rescheduled, report.time_changed) == (1, 2)


def test_log_fields_are_plain_values() -> None:
    report = SyncReport(sync_date=D1, trigger=Trigger.SCHEDULE, fundamentals_failed=["A", "B"])
    fields = log_fields(report)
    assert fields["sync_date"] == "2026-11-25" and fields["fundamentals_failed"] == 2
    assert fields["status"] is SyncStatus.FAILED and not report.ok
