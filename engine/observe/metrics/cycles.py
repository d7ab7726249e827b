"""Cycles (supervisor): one completed cycle's counts and durations, overruns, failure rate."""

from __future__ import annotations

import time

from engine.observe.metrics.multiprocess import families as _m
from engine.stats import CycleStats


def record_cycle(summary: CycleStats, now: float | None = None) -> None:
    """Supervisor, once per completed cycle (``CycleBook.finish``)."""
    m = _m()
    s, f, p = summary, summary.fetch, summary.publish
    m.cycles.labels(outcome="ok" if s.ok else "degraded").inc()
    m.cycle_duration.observe(s.seconds)
    m.cycle_fetch_duration.observe(s.fetch_seconds)
    m.symbols_requested.inc(f.requested)
    m.symbols_fetched.inc(f.fetched)
    m.symbols_missing.inc(f.missing)
    m.symbols_failed.inc(f.failed)
    m.quotes_valid.inc(f.valid)
    m.quotes_unchanged.inc(f.unchanged)
    m.quotes_stale.inc(f.stale)
    for reason, n in f.rejected.items():
        if n:
            m.quotes_rejected.labels(reason=reason).inc(n)
    for outcome, n in (
        ("published", p.published),
        ("deduplicated", p.deduplicated),
        ("failed", p.failed),
        ("dead_lettered", p.dlq),
        ("outboxed", p.outboxed),
    ):
        m.messages.labels(outcome=outcome).inc(n)
    if s.fetch_seconds > 0:
        m.symbols_per_second.set(f.fetched / s.fetch_seconds)
    if s.ok:
        m.last_success.set(time.time() if now is None else now)


def set_failure_rate(ratio: float, alerting: bool) -> None:
    """Supervisor, once per completed cycle: the alerting hook's window (engine.observe.alerts)."""
    m = _m()
    m.failure_ratio.set(ratio)
    m.failure_alert.set(1 if alerting else 0)


def record_overrun(missed_ticks: int) -> None:
    """Supervisor, when the scheduler skips ticks (``Supervisor._scheduler``)."""
    if missed_ticks > 0:
        _m().cycle_overruns.inc(missed_ticks)
