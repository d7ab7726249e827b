"""The PostgreSQL store's counters and the snapshot of them it reports."""

from __future__ import annotations

from dataclasses import dataclass

from engine.sinks.migrations import Mode


@dataclass(slots=True)
class StoreCounters:
    """Running totals since start, shared by the store's parts (``rows_*`` are quotes)."""

    submitted: int = 0
    written: int = 0
    duplicate: int = 0
    expired: int = 0
    rejected: int = 0
    dropped: int = 0
    spilled_total: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A snapshot of the store's counters (``rows_*`` are quotes; totals since start)."""

    available: bool  # the last attempt to reach PostgreSQL succeeded
    mode: Mode | None  # None until the first successful migration
    rows_submitted: int
    rows_written: int  # new rows inserted
    rows_duplicate: int  # already stored (ON CONFLICT, or equal to the last stored quote)
    rows_expired: int  # older than the retention cutoff: not stored
    rows_rejected: int  # refused by PostgreSQL or unencodable (bad value): not stored
    rows_dropped: int  # lost: memory bound hit while spilling failed
    rows_buffered: int  # in memory now (queued + being written)
    rows_spilled: int  # on disk now, waiting to be written
    rows_spilled_total: int
    outages: int
    last_error_kind: str | None
    last_batch_rows: int
    last_batch_s: float | None
