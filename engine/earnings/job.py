"""The earnings job: wait for the next slot, sync, retry a failed sync with backoff, repeat.

Scheduling (:mod:`engine.earnings.schedule`): at each ``sync_times`` slot (09:30 New York) of
every NYSE session, and at start-up when today's latest passed slot has no completed run. A
failed sync (:class:`~engine.earnings.sync.EarningsSync` is idempotent) is run again after
``retry_base_s`` (doubling up to ``retry_max_s``) until it completes or the next slot is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

from engine.earnings.models import Clock, Trigger, utcnow
from engine.earnings.report import SyncReport
from engine.earnings.schedule import next_sync, ny_date, retry_delay
from engine.earnings.sync import EarningsSync
from engine.errors import IngestionError
from engine.observe import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

Waiter = Callable[[asyncio.Event, float], Awaitable[None]]
MAX_WAIT_S: Final = 300.0  # re-evaluate the schedule at least this often


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


async def until_stopped(run: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``await run``, unless ``stop`` is set first: then ``run`` is cancelled and None returned."""
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(run)
        stopping = tg.create_task(stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
        stopping.cancel()
    return None if task.cancelled() else task.result()


class EarningsJob:
    """The loop: wait for the next slot, sync, retry a failed sync with backoff, repeat."""

    def __init__(
        self,
        sync: EarningsSync,
        *,
        clock: Clock = utcnow,
        wait: Waiter = wait_or_stop,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        self.sync = sync
        self.settings = sync.settings
        self.times = sync.settings.times()
        self.clock = clock
        self.wait = wait
        self.max_wait_s = max_wait_s
        self.failures = 0
        self.retry_at: dt.datetime | None = None
        self.retry_slot: dt.datetime | None = None
        self.reports: list[SyncReport] = []  # the latest runs, newest last (bounded)

    async def next_due(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """(when to run, the slot it runs for); a run time in the past means "at once"."""
        covered = await self.sync.store.covered(ny_date(now))
        slot = next_sync(now, covered, self.sync.calendar, self.times)
        if self.retry_slot is not None and slot != self.retry_slot:
            self.failures, self.retry_at, self.retry_slot = 0, None, None  # a new slot
        if self.retry_at is not None and self.retry_at > slot:
            return self.retry_at, slot
        return slot, slot

    async def step(self, stop: asyncio.Event) -> SyncReport | None:
        """Wait (at most ``max_wait_s``) or run the due sync; the run's report, if any."""
        now = self.clock()
        try:
            run_at, slot = await self.next_due(now)
        except IngestionError as exc:  # PostgreSQL unreachable: cannot tell what is due
            self._failed(now, self.retry_slot, exc.kind)
            await self.wait(stop, retry_delay(self.failures, *self._retry_bounds()))
            return None
        delay = (run_at - now).total_seconds()
        if delay > 0:
            await self.wait(stop, min(delay, self.max_wait_s))
            return None
        report = await until_stopped(
            self.sync.run(ny_date(slot), trigger=Trigger.SCHEDULE, covers=slot), stop
        )
        if report is None:  # stopping: the run is cancelled, and redone at the next start
            log.info("earnings_sync_interrupted", extra={"slot": slot.isoformat()})
            return None
        self.reports = [*self.reports[-9:], report]
        metrics.record_earnings_sync(
            report.ok,
            report.fetched,
            report.inserted + report.updated + report.rescheduled,
            report.duration_s,
        )
        if report.ok:
            self.failures, self.retry_at, self.retry_slot = 0, None, None
        else:
            self._failed(self.clock(), slot, report.error_kind)
        return report

    def _retry_bounds(self) -> tuple[float, float]:
        return self.settings.retry_base_s, self.settings.retry_max_s

    def _failed(self, now: dt.datetime, slot: dt.datetime | None, kind: str | None) -> None:
        self.failures += 1
        delay = retry_delay(self.failures, *self._retry_bounds())
        self.retry_at = now + dt.timedelta(seconds=delay)
        self.retry_slot = slot
        log.warning(
            "earnings_sync_retry_scheduled",
            extra={
                "failures": self.failures,
                "retry_in_s": delay,
                "retry_at": self.retry_at.isoformat(),
                "error_kind": kind,
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        log.info("earnings_job_started", extra={"sync_times": list(self.settings.sync_times)})
        while not stop.is_set():
            try:
                await self.step(stop)
            except Exception:  # a bug, not an outage: keep the job alive, retry later
                log.exception("earnings_step_crashed")
                self._failed(self.clock(), self.retry_slot, "Crash")
                await self.wait(stop, retry_delay(self.failures, *self._retry_bounds()))
        log.info("earnings_job_stopped")
