"""Per-cycle accounting: several workers' FetchCounts summed, a dead worker's share, completion."""

from __future__ import annotations

import asyncio
import logging

import pytest

from engine.runtime import ipc
from engine.runtime.cycles import WORKER_DIED, CycleBook, OpenCycle, Scheduler
from engine.runtime.tasks import TaskSupervisor
from engine.stats import FetchCounts, PublishCounts


def test_sums_the_fetch_counts_of_every_worker() -> None:
    c = OpenCycle(3, range(3))
    c.add_fetched(0, FetchCounts(requested=10, fetched=9, valid=8, rejected={"stale": 1}), 100)
    c.add_fetched(2, FetchCounts(requested=5, failed=5, errors={"RateLimitedError": 1}), 40)
    assert not c.fetched.is_set()
    assert c.pending == {1}
    c.add_fetched(1, FetchCounts(requested=7, fetched=7, valid=7, rejected={"stale": 2}), 7)
    assert c.fetched.is_set()
    f = c.stats.fetch
    assert (f.requested, f.fetched, f.valid, f.failed) == (22, 16, 15, 5)
    assert f.rejected == {"stale": 3}
    assert f.errors == {"RateLimitedError": 1}
    assert c.heads == {0: 100, 1: 7, 2: 40}
    assert c.stats.fetch_seconds > 0


def test_a_dead_workers_share_counts_as_failed() -> None:
    c = OpenCycle(1, range(2))
    c.add_fetched(0, FetchCounts(requested=4, fetched=4, valid=4), 4)
    c.add_lost(1, 6, 12)
    assert c.fetched.is_set()
    assert (c.stats.fetch.requested, c.stats.fetch.failed) == (10, 6)
    assert c.stats.fetch.errors == {WORKER_DIED: 1}
    assert c.heads[1] == 12


def test_close_fetch_ends_the_fetch_phase_at_the_ring_heads() -> None:
    c = OpenCycle(1, range(3))
    c.add_fetched(1, FetchCounts(requested=1), 5)
    c.close_fetch({0: 10, 1: 99, 2: 30})
    assert c.fetched.is_set()
    assert c.heads == {0: 10, 1: 5, 2: 30}
    assert c.stats.fetch.requested == 1


def test_published_completes_the_cycle() -> None:
    c = OpenCycle(2, [0])
    c.add_published(ipc.CyclePublished(cycle=2, counts=PublishCounts(published=3, dlq=1)))
    assert c.published.is_set()
    assert c.stats.publish.published == 3
    assert c.stats.seconds > 0


def test_the_summary_line_is_unchanged() -> None:
    """``run --once`` prints it; tests and the bench parse it."""
    c = OpenCycle(4, range(2))
    c.add_fetched(0, FetchCounts(requested=3, fetched=3, valid=2, unchanged=1,
                                 rejected={"stale": 1}), 3)  # fmt: skip
    c.add_fetched(1, FetchCounts(requested=2, fetched=1, valid=1, missing=1), 1)
    c.add_published(ipc.CyclePublished(cycle=4, counts=PublishCounts(published=2)))
    c.stats.seconds = 1.25
    assert c.stats.line() == (
        "cycle=4 requested=5 fetched=4 valid=3 rejected=1 (stale=1) published=2 "
        "deduplicated=1 failed=0 outboxed=0 missing=1 seconds=1.250"
    )


def test_book_keeps_the_completed_cycles(caplog: pytest.LogCaptureFixture) -> None:
    book = CycleBook()
    first = book.start(range(1))
    second = book.start(range(1))
    assert (first.cycle, second.cycle) == (1, 2)
    assert set(book.open) == {1, 2}
    first.add_fetched(0, FetchCounts(requested=2, fetched=2, valid=2), 2)
    first.add_published(ipc.CyclePublished(cycle=1, counts=PublishCounts(published=2)))
    with caplog.at_level(logging.INFO, logger="engine.runtime.cycles"):
        book.finish(first, None)
    assert set(book.open) == {2}
    assert book.last is first.stats
    assert list(book.recent) == [first.stats]
    done = [r for r in caplog.records if r.getMessage() == "cycle_completed"]
    assert len(done) == 1
    assert done[0].levelno == logging.INFO
    assert done[0].requested == 2  # type: ignore[attr-defined]
    assert done[0].publish_failed == 0  # type: ignore[attr-defined]


def test_cycle_completed_carries_the_flat_fields() -> None:
    """The log line's fields (the bench and the tests read them) keep their names and order."""
    c = OpenCycle(1, [0])
    assert list(c.stats.fields()) == [
        "cycle", "requested", "fetched", "valid", "unchanged", "stale", "regular", "missing",
        "failed", "requests", "failed_requests", "attempts", "rejected", "errors", "published",
        "deduplicated", "publish_failed", "dlq", "outboxed", "fetch_seconds", "seconds",
        "rate_rps", "rate_headroom", "breaker",
    ]  # fmt: skip


class Host:
    """Cycles whose fetch phase takes ``fetch_s`` and that publish at once; stops after ``n``."""

    def __init__(self, n: int, fetch_s: float = 0.0) -> None:
        self.stopping = asyncio.Event()
        self.book = CycleBook()
        self.n = n
        self.fetch_s = fetch_s
        self.completed: list[int] = []
        self.waited: list[int] = []

    def start_cycle(self) -> OpenCycle:
        cyc = self.book.start([0])
        asyncio.get_running_loop().call_later(self.fetch_s, self._done, cyc)
        return cyc

    def _done(self, cyc: OpenCycle) -> None:
        cyc.add_fetched(0, FetchCounts(requested=1), 1)
        cyc.add_published(ipc.CyclePublished(cycle=cyc.cycle, counts=PublishCounts()))

    def complete(self, cyc: OpenCycle) -> None:
        self.completed.append(cyc.cycle)
        if len(self.completed) >= self.n:
            self.stopping.set()

    def waiting(self, cyc: OpenCycle) -> None:
        self.waited.append(cyc.cycle)


async def test_scheduler_once_runs_one_cycle_to_completion() -> None:
    host = Host(n=99)
    async with TaskSupervisor("test") as tasks:
        await Scheduler(host, tasks, interval_s=60.0).run(once=True)
    assert host.completed == [1]


async def test_scheduler_counts_overruns_and_starts_the_next_cycle_at_once() -> None:
    host = Host(n=3, fetch_s=0.05)
    async with TaskSupervisor("test") as tasks:
        scheduler = Scheduler(host, tasks, interval_s=0.02)
        await asyncio.wait_for(scheduler.run(once=False), timeout=10.0)
        scheduler.cancel()
    assert host.completed[:3] == [1, 2, 3]
    assert scheduler.overruns >= 2  # every 50 ms fetch phase covered at least two 20 ms ticks


async def test_scheduler_reports_a_long_fetch_phase() -> None:
    """Issue 16: nothing was printed for minutes while Yahoo was down. The host is told every
    progress_s while a fetch phase lasts (once mode too), and not after it ended."""
    host = Host(n=99, fetch_s=0.55)
    async with TaskSupervisor("test") as tasks:
        await Scheduler(host, tasks, interval_s=60.0, progress_s=0.1).run(once=True)
    assert host.completed == [1]
    assert 4 <= len(host.waited) <= 6 and set(host.waited) == {1}


async def test_scheduler_quick_fetch_reports_nothing() -> None:
    host = Host(n=99, fetch_s=0.0)
    async with TaskSupervisor("test") as tasks:
        await Scheduler(host, tasks, interval_s=60.0, progress_s=0.1).run(once=True)
    assert host.waited == []
