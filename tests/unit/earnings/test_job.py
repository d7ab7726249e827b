"""The earnings loop with a fake sync: what is due, and the retry schedule of a failed sync."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace
from typing import Any

from engine.config import EarningsSettings
from engine.earnings.job import EarningsJob
from engine.earnings.models import SyncStatus, Trigger
from engine.earnings.report import SyncReport
from engine.earnings.schedule import NY, WeekdayCalendar

SLOT = dt.datetime(2026, 11, 25, 9, 30, tzinfo=NY)  # a Wednesday


class FakeSync:
    def __init__(self, outcomes: list[bool]) -> None:
        self.settings = EarningsSettings(retry_base_s=30.0, retry_max_s=900.0)
        self.calendar = WeekdayCalendar()
        self.covers: dt.datetime | None = None
        self.store = SimpleNamespace(covered=self._covered)
        self.outcomes = outcomes
        self.runs: list[dt.date] = []

    async def _covered(self, day: dt.date) -> dt.datetime | None:
        return self.covers

    async def run(self, day: dt.date, *, trigger: Trigger, covers: dt.datetime) -> SyncReport:
        self.runs.append(day)
        ok = self.outcomes.pop(0)
        if ok:
            self.covers = covers
        return SyncReport(
            sync_date=day,
            trigger=Trigger.SCHEDULE,
            status=SyncStatus.COMPLETE if ok else SyncStatus.FAILED,
            error_kind=None if ok else "RateLimitedError",
        )


class Clock:
    def __init__(self, t: dt.datetime) -> None:
        self.t = t
        self.waits: list[float] = []

    def now(self) -> dt.datetime:
        return self.t

    async def wait(self, stop: asyncio.Event, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += dt.timedelta(seconds=seconds)


def job(sync: FakeSync, clock: Clock) -> EarningsJob:
    return EarningsJob(sync, clock=clock.now, wait=clock.wait, max_wait_s=1e9)  # type: ignore[arg-type]


async def test_a_failed_sync_is_retried_with_doubling_delays() -> None:
    sync, clock = FakeSync([False, False, True]), Clock(SLOT + dt.timedelta(hours=1))
    j, stop = job(sync, clock), asyncio.Event()
    reports: list[Any] = [await j.step(stop) for _ in range(5)]
    assert [r.status if r else None for r in reports] == [
        "failed", None, "failed", None, "complete",
    ]  # fmt: skip
    assert clock.waits == [30.0, 60.0]
    assert sync.runs == [SLOT.date()] * 3 and j.failures == 0 and j.retry_at is None


async def test_nothing_due_waits_for_the_next_slot() -> None:
    sync, clock = FakeSync([True]), Clock(SLOT - dt.timedelta(minutes=30))
    j = job(sync, clock)
    assert await j.step(asyncio.Event()) is None
    assert clock.waits == [1800.0] and not sync.runs
    report = await j.step(asyncio.Event())
    assert report is not None and report.ok and sync.covers == SLOT


class HangingSync(FakeSync):
    """A sync that never finishes on its own (a long fundamentals fetch)."""

    def __init__(self) -> None:
        super().__init__([])
        self.cancelled = False

    async def run(self, day: dt.date, *, trigger: Trigger, covers: dt.datetime) -> SyncReport:
        self.runs.append(day)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("unreachable")


async def test_stop_interrupts_a_sync_in_progress() -> None:
    """Stopping the engine does not wait for a running sync: it is cancelled (redone later)."""
    sync = HangingSync()
    clock = Clock(SLOT + dt.timedelta(minutes=5))
    stop = asyncio.Event()
    stepping = asyncio.create_task(job(sync, clock).step(stop))
    await asyncio.sleep(0.01)
    assert sync.runs and not stepping.done()
    stop.set()
    assert await asyncio.wait_for(stepping, 1) is None
    assert sync.cancelled
