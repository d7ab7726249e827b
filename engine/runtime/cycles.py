"""Per-cycle accounting: summing the workers' and the publisher's counts into one CycleStats.

A cycle is open from ``StartCycle`` until the publisher's ``CyclePublished``. Each worker's
``CycleFetched`` adds its :class:`~engine.stats.FetchCounts` and its ring head; once every worker
has answered (or died, its share counted as failed) the fetch phase is over and the cycle can be
sealed. When the publisher answers, the cycle is complete: the :class:`CycleBook` logs it, records
its metrics, feeds the data-quality tracker and the failure-rate alert window, and keeps the last
few for ``/status``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Final

from engine.observe import metrics
from engine.observe.alerts import FailureRateWindow
from engine.observe.quality import QualityTracker, regular_session
from engine.ringbuf import LastSeenTable
from engine.runtime import ipc
from engine.stats import CycleStats, FetchCounts

log = logging.getLogger(__name__)

RECENT_CYCLES: Final = 30
WORKER_DIED: Final = "WorkerDied"
"""Error kind counted for the share of a worker that died during the fetch phase."""


class OpenCycle:
    """A cycle in flight: which workers still fetch, where their records end, what was counted."""

    def __init__(self, cycle: int, workers: Iterable[int]) -> None:
        self.stats = CycleStats(cycle=cycle)
        self.t0 = time.perf_counter()
        self.pending = set(workers)
        self.heads: dict[int, int] = {}
        self.fetched = asyncio.Event()
        """Set once every worker answered: the cycle can be sealed."""
        self.published = asyncio.Event()
        """Set once the publisher answered: the cycle is complete."""

    @property
    def cycle(self) -> int:
        return self.stats.cycle

    def add_fetched(self, worker: int, counts: FetchCounts, ring_head: int) -> None:
        self.stats.fetch.add(counts)
        self.heads[worker] = ring_head
        self.pending.discard(worker)
        if not self.pending:
            self.stats.fetch_seconds = time.perf_counter() - self.t0
            self.fetched.set()

    def add_lost(self, worker: int, symbols: int, ring_head: int) -> None:
        """``worker`` died before answering: its ``symbols`` count as failed."""
        lost = FetchCounts(requested=symbols, failed=symbols, errors={WORKER_DIED: 1})
        self.add_fetched(worker, lost, ring_head)

    def skip(self, worker: int, ring_head: int) -> None:
        """``worker`` takes no part (it is being restarted, or it is gone at shutdown)."""
        self.pending.discard(worker)
        self.heads[worker] = ring_head

    def close_fetch(self, heads: dict[int, int]) -> None:
        """The fetch phase is over whoever has not answered (their records end at ``heads``)."""
        for w in list(self.pending):
            self.skip(w, heads[w])
        self.fetched.set()

    def add_published(self, m: ipc.CyclePublished) -> None:
        self.stats.publish = m.counts
        self.stats.seconds = time.perf_counter() - self.t0
        self.published.set()


class CycleBook:
    """The open cycles, and what the completed ones leave behind."""

    def __init__(self) -> None:
        self.open: dict[int, OpenCycle] = {}
        self.cycle_no = 0
        self.last: CycleStats | None = None
        self.recent: deque[CycleStats] = deque(maxlen=RECENT_CYCLES)
        self.failures = FailureRateWindow()
        self.tracker: QualityTracker | None = None

    def start(self, workers: Iterable[int]) -> OpenCycle:
        self.cycle_no += 1
        cyc = OpenCycle(self.cycle_no, workers)
        self.open[self.cycle_no] = cyc
        return cyc

    def finish(self, cyc: OpenCycle, table: LastSeenTable | None) -> None:
        """Account for a completed cycle (``table``: the last-seen table, for data quality)."""
        s = cyc.stats
        self.open.pop(s.cycle, None)
        self.last = s
        self.recent.append(s)
        metrics.record_cycle(s)
        if table is not None:
            self._observe_quality(s, table)
        level = logging.INFO if s.ok else logging.WARNING
        log.log(level, "cycle_completed", extra=s.fields())
        self._check_failure_rate(s)

    def _check_failure_rate(self, s: CycleStats) -> None:
        now = time.monotonic()
        self.failures.add(now, s.fetch.requested, s.fetch.failed)
        change = self.failures.check(now)
        metrics.set_failure_rate(self.failures.rate(now), self.failures.alerting)
        if change == "raised":
            log.error(
                "failure_rate_high",
                extra={"rate": round(self.failures.rate(now), 4), "window_s": 300},
            )
        elif change == "cleared":
            log.info("failure_rate_recovered", extra={"rate": round(self.failures.rate(now), 4)})

    def _observe_quality(self, s: CycleStats, table: LastSeenTable) -> None:
        if self.tracker is None:
            return
        now = time.time()
        self.tracker.observe(
            cycle=s.cycle,
            now=now,
            market_time=table.times.copy(),
            ok_cycle=table.ok_cycle.copy(),
            regular_hours=regular_session(s.fetch.regular, s.fetch.valid, now),
        )
