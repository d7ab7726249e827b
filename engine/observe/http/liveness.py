"""Liveness: ``/healthz`` turns 503 when a stage has work and has made no progress for a while.

The supervisor reads its progress markers (:class:`Progress`) from what it already sees - the
cycles it started, the workers' answers, the ring positions in shared memory - and the
:class:`LivenessMonitor` judges each stage:

``scheduler``
    has work once the first cycle started and no fetch phase is in flight (the scheduler waits
    for that one, it is not stalled); progress is a new cycle started. Stalled after
    ``max(stall_after_s, SCHEDULER_INTERVALS * interval_s)`` without one.
``fetch``
    has work while a cycle's fetch phase is open (a worker has not answered); progress is a
    worker writing a record to its ring (a ring head moving) or answering.
``publisher``
    has work while a ring holds unreleased records; progress is a ring tail moving (records
    released: published and stored, or put in the outbox or the spill).

A stage without work is never stalled (its clock restarts). The markers are read every
``check_interval`` by the HTTP server's background task, so the gauges
``ingestion_stage_stalled`` and ``ingestion_stage_progress_age_seconds`` stay current, and a
stage going stalled (``stage_stalled``, error) or recovering (``stage_recovered``) is logged once.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final

from engine.observe import metrics

log = logging.getLogger(__name__)

SCHEDULER_INTERVALS: Final = 3
"""The scheduler is stalled after this many intervals without a new cycle (and at least
``stall_after_s``)."""


class Stage(enum.StrEnum):
    SCHEDULER = "scheduler"
    FETCH = "fetch"
    PUBLISHER = "publisher"


@dataclass(frozen=True, slots=True)
class Progress:
    """One reading of the engine's progress markers (cheap: read from memory)."""

    cycles_started: int
    fetching: bool
    """A cycle's fetch phase is open (some worker has not answered)."""
    ring_heads: tuple[int, ...]
    pending_workers: int
    """Workers that have not answered (``CycleFetched``, or died) for the open fetch phases."""
    ring_tails: tuple[int, ...]
    unreleased: int
    """Records the rings hold that the publisher has not released."""

    def work_and_marker(self, stage: Stage) -> tuple[bool, Hashable]:
        """Whether ``stage`` has work now, and the marker whose change is its progress."""
        if stage is Stage.SCHEDULER:
            return self.cycles_started > 0 and not self.fetching, self.cycles_started
        if stage is Stage.FETCH:
            return self.fetching, (self.cycles_started, self.ring_heads, self.pending_workers)
        return self.unreleased > 0, self.ring_tails


@dataclass(frozen=True, slots=True)
class StageHealth:
    """One stage as ``/healthz`` reports it."""

    stage: Stage
    has_work: bool
    since_progress_s: float
    stalled: bool

    def doc(self) -> dict[str, Any]:
        return {
            "status": "stalled" if self.stalled else "ok",
            "has_work": self.has_work,
            "since_progress_s": round(self.since_progress_s, 3),
        }


@dataclass(frozen=True, slots=True)
class LivenessReport:
    stages: tuple[StageHealth, ...]

    @property
    def stalled(self) -> list[str]:
        return [str(s.stage) for s in self.stages if s.stalled]

    @property
    def alive(self) -> bool:
        return not self.stalled

    def doc(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.alive else "stalled",
            "stalled": self.stalled,
            "stages": {str(s.stage): s.doc() for s in self.stages},
        }


class LivenessMonitor:
    """Remembers when each stage last made progress (or had no work) and judges it stalled
    after its threshold. Pure apart from the metrics and the logs; ``clock`` injected."""

    def __init__(self, stall_after_s: float, interval_s: float, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.thresholds = {
            Stage.SCHEDULER: max(stall_after_s, SCHEDULER_INTERVALS * interval_s),
            Stage.FETCH: stall_after_s,
            Stage.PUBLISHER: stall_after_s,
        }
        now = clock()
        self._since: dict[Stage, float] = dict.fromkeys(Stage, now)
        self._marker: dict[Stage, Hashable] = {}
        self._stalled: dict[Stage, bool] = dict.fromkeys(Stage, False)

    def observe(self, p: Progress) -> LivenessReport:
        now = self.clock()
        out = []
        for stage in Stage:
            has_work, marker = p.work_and_marker(stage)
            if not has_work or self._marker.get(stage) != marker:
                self._since[stage] = now
            self._marker[stage] = marker
            age = now - self._since[stage]
            stalled = has_work and age > self.thresholds[stage]
            self._note(stage, stalled, age)
            out.append(StageHealth(stage, has_work, age, stalled))
        return LivenessReport(tuple(out))

    def _note(self, stage: Stage, stalled: bool, age: float) -> None:
        metrics.set_stage_liveness(str(stage), stalled, age)
        if stalled == self._stalled[stage]:
            return
        self._stalled[stage] = stalled
        extra = {"stage": str(stage), "since_progress_s": round(age, 3)}
        if stalled:
            log.error("stage_stalled", extra={**extra, "threshold_s": self.thresholds[stage]})
        else:
            log.info("stage_recovered", extra=extra)
