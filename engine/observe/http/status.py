"""What the status endpoints show: the supervisor's :class:`StatusSource`, the
:class:`StatusView` gathered once per request, and the ``/status.json`` document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol

from engine.observe.quality import QualitySnapshot
from engine.source.breaker import BreakerState
from engine.stats import CycleStats

STATUS_CYCLES: Final = 10
"""How many of the last cycles the page and the document show."""


CycleStatus = CycleStats
"""A completed cycle as the status page reads it."""


@dataclass(frozen=True, slots=True)
class RateView:
    """The adaptive rate limiter as the page shows it (from
    ``YahooGuard.snapshot()``);
    ``headroom_ratio`` is :func:`engine.observe.metrics.budget_headroom` (0: a cycle is not
    covered)."""

    current_rps: float
    max_rps: float
    headroom_ratio: float


class StatusSource(Protocol):
    """What the supervisor exposes to the HTTP server (every method is cheap and sync)."""

    def recent_cycles(self) -> Sequence[CycleStatus]:
        """The last completed cycles, oldest first (a few dozen at most)."""
        ...

    def breaker_state(self) -> BreakerState:
        """The shared circuit breaker's state."""
        ...

    def rate_limit(self) -> RateView | None: ...

    def quality(self) -> QualitySnapshot | None:
        """The latest data-quality snapshot (None before the first cycle)."""
        ...

    def refresh_metrics(self) -> None:
        """Set the gauges read from shared state (``metrics.set_breaker_state``,
        ``set_rate_limit``, ``set_ring_occupancy``); called before each scrape."""
        ...


@dataclass(frozen=True, slots=True)
class StatusView:
    """Everything ``/status`` shows, gathered once per request."""

    now: float
    started_at: float
    version: str
    cycles: Sequence[CycleStatus]
    breaker: str
    rate: RateView | None
    quality: QualitySnapshot | None


class ErrorRates(NamedTuple):
    """Error rates over some cycles (None: nothing was requested)."""

    request: float | None
    """Failed batch requests / batch requests."""
    symbol_loss: float | None
    """Symbols without a quote (failed + missing) / symbols requested."""


def error_rates(cycles: Sequence[CycleStatus]) -> ErrorRates:
    """(failed requests / requests, symbols without a quote / requested) over ``cycles``.

    A failed request is a batch request that failed after its retries - the Grafana "Error
    rate" panel's ``ingestion_fetch_failures_total``; the engine then splits the batch and
    usually still gets every symbol, which the second ratio (failed + missing) shows."""
    requests = sum(c.fetch.requests for c in cycles)
    failed_requests = sum(c.fetch.failed_requests for c in cycles)
    requested = sum(c.fetch.requested for c in cycles)
    lost = sum(c.fetch.failed + c.fetch.missing for c in cycles)
    return ErrorRates(
        failed_requests / requests if requests else None,
        lost / requested if requested else None,
    )


def status_doc(v: StatusView) -> dict[str, Any]:
    """The ``/status.json`` document: the figures of the page, without the heatmap."""
    req_rate, sym_rate = error_rates(v.cycles)
    q = v.quality
    return {
        "version": v.version,
        "uptime_s": round(v.now - v.started_at, 3),
        "breaker": v.breaker,
        "rate_limit": None
        if v.rate is None
        else {
            "current_rps": v.rate.current_rps,
            "max_rps": v.rate.max_rps,
            "headroom_ratio": v.rate.headroom_ratio,
        },
        "request_error_rate": req_rate,
        "symbol_loss_rate": sym_rate,
        "cycles": [
            {
                "cycle": c.cycle,
                "ok": c.ok,
                "requested": c.fetch.requested,
                "valid": c.fetch.valid,
                "missing": c.fetch.missing,
                "failed": c.fetch.failed,
                "published": c.publish.published,
                "seconds": c.seconds,
            }
            for c in v.cycles[-STATUS_CYCLES:]
        ],
        "quality": None
        if q is None
        else {
            "cycle": q.cycle,
            "symbols": q.symbols,
            "missing": q.missing,
            "stale": q.stale,
            "regular_hours": q.regular_hours,
            "sectors": [
                {"name": s.name, "symbols": s.symbols, "missing": s.missing, "stale": s.stale}
                for s in q.sectors
            ],
            "top_failing": [
                {"symbol": f.symbol, "sector": f.sector, "missed": f.missed, "streak": f.streak}
                for f in q.top_failing
            ],
        },
    }
