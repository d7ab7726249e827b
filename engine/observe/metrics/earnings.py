"""The earnings-calendar job: one record per sync."""

from __future__ import annotations

import time

from engine.observe.metrics.multiprocess import families as _m


def record_earnings_sync(
    ok: bool, fetched: int, changed: int, seconds: float, now: float | None = None
) -> None:
    """Earnings job, after each sync (``EarningsJob.step``): ``report.ok``, ``report.fetched``,
    ``report.inserted + report.updated + report.rescheduled``, ``report.duration_s``."""
    m = _m()
    m.earnings_syncs.labels(outcome="ok" if ok else "failed").inc()
    m.earnings_fetched.inc(fetched)
    m.earnings_changed.inc(changed)
    m.earnings_duration.set(seconds)
    if ok:
        m.earnings_last_success.set(time.time() if now is None else now)
