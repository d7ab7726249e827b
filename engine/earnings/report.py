"""What one earnings sync did: :class:`SyncReport` (printed by ``earnings sync``, stored as
the run's summary, logged as ``earnings_sync_finished``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from engine.earnings.models import RowIssue, SyncStatus, Trigger
from engine.earnings.store import UpsertResult


class SyncReport(msgspec.Struct, kw_only=True):
    """What one sync did (printed by ``earnings sync``, stored as the run's summary)."""

    sync_date: dt.date
    trigger: Trigger
    status: SyncStatus = SyncStatus.FAILED
    current: bool = True  # sync_date is today: flags, announcements and fundamentals apply
    source: str | None = None
    fetch_start: dt.date | None = None
    fetch_end: dt.date | None = None
    fetched: int = 0
    rejected: int = 0
    warnings: int = 0
    outside_window: int = 0
    duplicates: int = 0
    pages: int = 0
    requests: int = 0
    fallback_used: bool = False
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rescheduled: int = 0
    time_changed: int = 0
    flags_set: int = 0
    flags_cleared: int = 0
    announced_reporting: int = 0
    announced_eps: int = 0
    publish_duplicates: int = 0
    fundamentals_written: int = 0
    fundamentals_unavailable: int = 0
    fundamentals_skipped: int = 0
    fundamentals_failed: list[str] = msgspec.field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None
    started_at: dt.datetime | None = None
    duration_s: float = 0.0
    rejections: list[RowIssue] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == SyncStatus.COMPLETE


def count_upsert(report: SyncReport, upsert: UpsertResult) -> None:
    """Copy the counts of an upsert into ``report``."""
    report.inserted = upsert.inserted
    report.updated = upsert.updated
    report.unchanged = upsert.unchanged
    report.rescheduled = len(upsert.moves)
    report.time_changed = len(upsert.time_changes)


def log_fields(r: SyncReport) -> dict[str, Any]:
    keys = (
        "sync_date", "trigger", "status", "source", "fetched", "rejected", "inserted", "updated",
        "unchanged",
        "rescheduled", "announced_reporting", "announced_eps", "fundamentals_written",
        "error_kind", "duration_s",
    )  # fmt: skip
    out = {k: getattr(r, k) for k in keys}
    out["sync_date"] = r.sync_date.isoformat()
    out["flags_set"] = r.flags_set
    out["fundamentals_failed"] = len(r.fundamentals_failed)
    return out
