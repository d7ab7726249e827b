"""Cycles (supervisor): one completed cycle's counts and durations, overruns, failure rate."""

from __future__ import annotations

import time
from typing import Protocol

from engine.observe.metrics.multiprocess import families as _m


class CycleView(Protocol):
    """What :func:`record_cycle` reads of a cycle (``engine.supervisor.CycleSummary``)."""

    @property
    def cycle(self) -> int: ...
    @property
    def requested(self) -> int: ...
    @property
    def fetched(self) -> int: ...
    @property
    def valid(self) -> int: ...
    @property
    def unchanged(self) -> int: ...
    @property
    def stale(self) -> int: ...
    @property
    def missing(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def rejected(self) -> dict[str, int]: ...
    @property
    def errors(self) -> dict[str, int]: ...
    @property
    def published(self) -> int: ...
    @property
    def deduplicated(self) -> int: ...
    @property
    def publish_failed(self) -> int: ...
    @property
    def dlq(self) -> int: ...
    @property
    def outboxed(self) -> int: ...
    @property
    def fetch_seconds(self) -> float: ...
    @property
    def seconds(self) -> float: ...
    @property
    def ok(self) -> bool: ...


def record_cycle(summary: CycleView, now: float | None = None) -> None:
    """Supervisor, once per completed cycle (``Supervisor._finish``)."""
    m = _m()
    s = summary
    m.cycles.labels(outcome="ok" if s.ok else "degraded").inc()
    m.cycle_duration.observe(s.seconds)
    m.cycle_fetch_duration.observe(s.fetch_seconds)
    m.symbols_requested.inc(s.requested)
    m.symbols_fetched.inc(s.fetched)
    m.symbols_missing.inc(s.missing)
    m.symbols_failed.inc(s.failed)
    m.quotes_valid.inc(s.valid)
    m.quotes_unchanged.inc(s.unchanged)
    m.quotes_stale.inc(s.stale)
    for reason, n in s.rejected.items():
        if n:
            m.quotes_rejected.labels(reason=reason).inc(n)
    for outcome, n in (
        ("published", s.published),
        ("deduplicated", s.deduplicated),
        ("failed", s.publish_failed),
        ("dead_lettered", s.dlq),
        ("outboxed", s.outboxed),
    ):
        m.messages.labels(outcome=outcome).inc(n)
    if s.fetch_seconds > 0:
        m.symbols_per_second.set(s.fetched / s.fetch_seconds)
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
