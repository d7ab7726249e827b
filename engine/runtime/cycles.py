"""Per-cycle accounting: summing the workers' and the publisher's counts into one CycleStats.

A cycle is open from ``StartCycle`` until the publisher's ``CyclePublished``. Each worker's
``CycleFetched`` adds its :class:`~engine.stats.FetchCounts` and its ring head; once every worker
has answered (a worker that died fetches its share again once restarted; if it cannot, the
share counts as failed) the fetch phase is over and the cycle can be
sealed. When the publisher answers, the cycle is complete: the :class:`CycleBook` logs it, records
its metrics, feeds the data-quality tracker and the failure-rate alert window, and keeps the last
few for ``/status``. The :class:`Scheduler` starts the cycles on their grid, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Final, Protocol

from engine.observe import metrics
from engine.observe.alerts import FailureRateWindow
from engine.observe.quality import QualityTracker, regular_session
from engine.ringbuf import LastSeenTable
from engine.runtime import ipc
from engine.runtime.schedule import next_start
from engine.runtime.tasks import TaskSupervisor
from engine.stats import CycleStats, FetchCounts

log = logging.getLogger(__name__)

RECENT_CYCLES: Final = 30
PROGRESS_EVERY_S: Final = 10.0
"""While a fetch phase lasts longer, the supervisor says how it is going this often."""
WORKER_DIED: Final = "WorkerDied"
"""Error kind counted for the share of a worker that died during the fetch phase."""


class OpenCycle:
    """A cycle in flight: which workers still fetch, where their records end, what was counted."""

    def __init__(self, cycle: int, workers: Iterable[int]) -> None:
        self.stats = CycleStats(cycle=cycle)
        self.t0 = time.perf_counter()
        self.pending = set(workers)
        self.redo: set[int] = set()
        """Workers that died during this fetch phase, to fetch their share again once restarted
        (at most once a cycle; they stay in ``pending`` until they answer)."""
        self.refetching: set[int] = set()
        """Workers of :attr:`redo` that were restarted and asked again."""
        self.heads: dict[int, int] = {}
        self.start_heads: dict[int, int] = {}
        """The rings' heads when the cycle started (records written since: its progress)."""
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
        """``worker`` died before answering and its share cannot be fetched again in this cycle
        (it died twice, the engine is stopping, or it did not come back in time): its
        ``symbols`` count as failed."""
        self.redo.discard(worker)
        self.refetching.discard(worker)
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


async def wait_or_stop(task: asyncio.Future[Any], stopping: asyncio.Event) -> None:
    """Wait for ``task`` or until ``stopping`` is set, whichever comes first."""
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()


class CycleHost(Protocol):
    """What the :class:`Scheduler` asks of the supervisor."""

    stopping: asyncio.Event

    def start_cycle(self) -> OpenCycle:
        """Start the next cycle (after a pending reload): ``StartCycle`` to every worker."""
        ...

    def complete(self, cyc: OpenCycle) -> None:
        """The publisher answered for ``cyc``: account for it."""
        ...

    def waiting(self, cyc: OpenCycle) -> None:
        """``cyc``'s fetch phase has gone on for another ``progress_s``: say how it goes."""
        ...


class Scheduler:
    """Starts a cycle every ``interval_s`` on a fixed grid; cycles never overlap.

    An overrun (a fetch phase longer than the interval) is logged and counted, the missed ticks
    are skipped and the next cycle starts at once - behind schedule, the rate budget is better
    spent than left idle until the next tick.
    """

    def __init__(
        self,
        host: CycleHost,
        tasks: TaskSupervisor,
        interval_s: float,
        *,
        progress_s: float = PROGRESS_EVERY_S,
    ) -> None:
        self.host = host
        self.tasks = tasks
        self.interval_s = interval_s
        self.progress_s = progress_s
        self.overruns = 0
        self._watchers: set[asyncio.Task[None]] = set()

    async def _watch_published(self, cyc: OpenCycle) -> None:
        await cyc.published.wait()
        self.host.complete(cyc)

    def _watch(self, cyc: OpenCycle) -> asyncio.Task[None]:
        watcher = self.tasks.spawn(f"cycle-{cyc.cycle}", self._watch_published(cyc))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return watcher

    async def _await_fetch(self, cyc: OpenCycle) -> None:
        """Until ``cyc``'s fetch phase ends (or the engine stops), :meth:`CycleHost.waiting`
        every ``progress_s``: a slow or failing Yahoo never means minutes of silence."""
        fetched = asyncio.ensure_future(cyc.fetched.wait())
        stop = asyncio.ensure_future(self.host.stopping.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {fetched, stop}, timeout=self.progress_s, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    return
                self.host.waiting(cyc)
        finally:
            fetched.cancel()
            stop.cancel()

    async def run(self, *, once: bool) -> None:
        stopping = self.host.stopping
        due = time.monotonic()
        while not stopping.is_set():
            cyc = self.host.start_cycle()
            watcher = self._watch(cyc)
            await self._await_fetch(cyc)
            if once:
                await wait_or_stop(watcher, stopping)
                return
            due, missed = next_start(due, self.interval_s, time.monotonic())
            if missed:
                self.overruns += missed
                metrics.record_overrun(missed)
                log.warning("cycle_overrun", extra={"cycle": cyc.cycle, "missed_ticks": missed})
                # behind schedule: the next pass starts now (the grid moves) rather than idling
                # until the next grid point with the rate budget unused
                due = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=due - time.monotonic())

    def cancel(self) -> None:
        """Stop waiting for the publisher's answers (the engine is exiting)."""
        for watcher in list(self._watchers):
            watcher.cancel()
