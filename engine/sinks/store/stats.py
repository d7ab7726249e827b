"""The PostgreSQL store's running counters (its snapshot is :class:`engine.stats.StoreStats`)."""

from __future__ import annotations

from dataclasses import dataclass


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
