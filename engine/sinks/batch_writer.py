"""The background batch writer shared by the PostgreSQL store and the Redis cache.

A sink keeps its own pending work (a queue of quotes, a map of the newest quote per symbol) and
says whether it has any; :class:`BatchWriter` runs the one loop that drains it: wait until woken,
write one batch, and on a failure keep the batch (the sink puts it back), note the outage and
wait a backoff before the next try. :class:`Outage` is the available/unavailable bookkeeping:
one count and one log line per outage, not per retry. The loop runs as a supervised task of its
owner (:class:`engine.runtime.tasks.TaskSupervisor`); :meth:`BatchWriter.wait_until` is the
flush/drain API.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from typing import Protocol

from engine.errors import IngestionError


class BatchResult(enum.Enum):
    """What one :meth:`BatchSink.write_batch` achieved."""

    WRITTEN = "written"
    """The sink answered: it is available."""
    DROPPED = "dropped"
    """The batch was given up for a reason that says nothing about the sink's health."""


class BatchSink(Protocol):
    """What a :class:`BatchWriter` drains."""

    def has_work(self) -> bool:
        """Whether :meth:`write_batch` has something to do now."""
        ...

    async def write_batch(self) -> BatchResult:
        """Write one batch; raise to keep it and retry after a backoff."""
        ...

    def batch_failed(self, exc: Exception) -> None:
        """A :meth:`write_batch` raised ``exc`` (log it, mark the sink down)."""
        ...

    def batch_written(self) -> None:
        """A :meth:`write_batch` reached the sink (mark it up)."""
        ...


class Outage:
    """Whether a dependency is reachable, how many outages it had, the retry count of this one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.available = True
        self.outages = 0
        self.attempt = 0
        """Failed tries since the last success: the backoff exponent."""
        self.last_error_kind: str | None = None
        self._down_since = 0.0

    def record_error(self, exc: BaseException) -> BaseException:
        """Remember the kind of ``exc`` (of its cause, for an engine error raised ``from`` one)."""
        cause = exc.__cause__ if isinstance(exc, IngestionError) and exc.__cause__ else exc
        self.last_error_kind = type(cause).__name__
        return cause

    def down(self) -> bool:
        """Mark the dependency unavailable; True if that starts an outage (counted once)."""
        if not self.available:
            return False
        self.available = False
        self._down_since = self._clock()
        self.outages += 1
        return True

    def up(self) -> float | None:
        """Mark it available; the outage's length in seconds if one just ended, else None."""
        self.attempt = 0
        if self.available:
            return None
        self.available = True
        return self._clock() - self._down_since


class BatchWriter:
    """One loop that drains a :class:`BatchSink`, backing off while the sink is down."""

    def __init__(
        self,
        sink: BatchSink,
        backoff: Callable[[int], float],
        outage: Outage | None = None,
    ) -> None:
        self._sink = sink
        self._backoff = backoff
        self.outage = outage or Outage()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._closing = asyncio.Event()

    def wake(self) -> None:
        """New work (or a state change): let the loop look again."""
        self._wake.set()

    def progressed(self) -> None:
        """Something was written or moved: let :meth:`wait_until` look again."""
        self._progress.set()

    def close(self) -> None:
        """Stop the loop after its current step (it also stops when its task is cancelled)."""
        self._closing.set()
        self._wake.set()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    async def run(self) -> None:
        """The loop: run it as a supervised task."""
        # wait_for() may swallow a cancel that races with its inner wait (3.11), so the loop
        # also stops by itself once closing is signalled.
        while not self._closing.is_set():
            if not self._sink.has_work():
                self._progress.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                result = await self._sink.write_batch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the sink kept the batch: retry after a backoff
                self._sink.batch_failed(exc)
                self._progress.set()
                await self.pause(self.next_delay())
                continue
            if result is BatchResult.WRITTEN:
                self._sink.batch_written()
            self._progress.set()

    def next_delay(self) -> float:
        """The backoff before the next try (and count this failed one)."""
        delay = self._backoff(self.outage.attempt)
        self.outage.attempt += 1
        return delay

    async def pause(self, delay_s: float) -> None:
        """Wait ``delay_s`` seconds, or less if the writer is closed meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=delay_s)

    async def wait_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Wake the loop and wait until ``done()`` (True) or ``timeout_s`` passed (``done()``)."""
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        return done()
