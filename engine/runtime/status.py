"""What the HTTP endpoint reads of the running engine (:class:`engine.observe.http.StatusSource`),
and the rate-limit figures the cycle summary and the budget warning share.

Every method is cheap and synchronous: the last completed cycles from the :class:`CycleBook`, the
shared Yahoo guard's rate limiter and breaker, the data-quality snapshot, the ring occupancy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from engine.config import Config
from engine.observe import metrics
from engine.observe.http import RateView
from engine.observe.http.liveness import Progress
from engine.observe.quality import QualitySnapshot
from engine.runtime.cycles import CycleBook
from engine.runtime.shared import SharedState
from engine.source.breaker import BreakerState
from engine.source.ratelimit import cycle_budget, cycles_to_cover, headroom
from engine.stats import CycleStats

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RateFigures:
    """The shared rate limiter against what one cycle needs."""

    current_rps: float
    max_rps: float
    budget: float
    """Requests the limiter allows in one scheduler interval."""
    need: int
    """Batch requests one whole cycle takes."""
    breaker: BreakerState


class EngineStatus:
    """The engine as the HTTP endpoint (and the cycle summary) sees it."""

    def __init__(self, config: Config, shared: SharedState, book: CycleBook) -> None:
        self.config = config
        self.shared = shared
        self.book = book

    def rate_figures(self) -> RateFigures | None:
        """None until the guard exists."""
        guard = self.shared.guard
        if guard is None:
            return None
        rate, brk = guard.snapshot()
        policy = guard.rate_policy
        budget = cycle_budget(rate, policy, self.config.scheduler.interval_s)
        need = self.shared.requests_per_cycle()
        return RateFigures(rate.rate, policy.max_rps, budget, need, brk.state)

    def stamp(self, s: CycleStats) -> None:
        """Put the rate limiter's and the breaker's state into a completed cycle's figures."""
        f = self.rate_figures()
        if f is not None:
            s.rate_rps = round(f.current_rps, 3)
            s.rate_headroom = round(headroom(f.budget, f.need), 3)
            s.breaker = f.breaker.name

    def check_budget(self) -> None:
        """Say so when the rate limiter's budget cannot cover a whole cycle."""
        f = self.rate_figures()
        if f is not None and f.budget < f.need:
            log.warning(
                "rate_budget_insufficient",
                extra={
                    "requests_needed": f.need,
                    "budget": round(f.budget, 1),
                    "rate_rps": round(f.current_rps, 3),
                    "cycles_per_pass": cycles_to_cover(f.need, f.budget),
                },
            )

    # -- engine.observe.http.StatusSource ---------------------------------------------------

    def recent_cycles(self) -> Sequence[CycleStats]:
        return tuple(self.book.recent)

    def breaker_state(self) -> BreakerState:
        f = self.rate_figures()
        return BreakerState.CLOSED if f is None else f.breaker

    def rate_limit(self) -> RateView | None:
        f = self.rate_figures()
        if f is None:
            return None
        return RateView(f.current_rps, f.max_rps, metrics.budget_headroom(f.budget, f.need))

    def quality(self) -> QualitySnapshot | None:
        tracker = self.book.tracker
        return tracker.last if tracker is not None else None

    def refresh_metrics(self) -> None:
        f = self.rate_figures()
        if f is not None:
            metrics.set_rate_limit(f.current_rps, f.max_rps, f.budget, f.need)
            metrics.set_breaker_state(f.breaker)
        for i, ring in enumerate(self.shared.rings):
            metrics.set_ring_occupancy(i, ring.occupancy(), ring.capacity)

    def progress(self) -> Progress:
        """The progress markers ``/healthz`` judges (:mod:`engine.observe.http.liveness`): the
        cycles started, the open fetch phases, the ring positions in shared memory."""
        rings = self.shared.rings
        fetching = [c for c in self.book.open.values() if not c.fetched.is_set()]
        return Progress(
            cycles_started=self.book.cycle_no,
            fetching=bool(fetching),
            ring_heads=tuple(r.head for r in rings),
            pending_workers=sum(len(c.pending) for c in fetching),
            ring_tails=tuple(r.tail for r in rings),
            unreleased=sum(r.occupancy() for r in rings),
        )
