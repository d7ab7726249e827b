"""The store's backlog: quotes waiting for PostgreSQL, in memory and, past a bound, on disk.

``add`` appends a submitted batch to the in-memory queue. While the queue holds more than
``max_rows`` quotes, the whole queue is spilled to a file in a worker thread (see
:mod:`engine.sinks.store.spill`); spill files are replayed oldest first (before the queue) and
deleted once every row is committed. :meth:`Backlog.spill_all` (a flush timeout, shutdown) also
spills the batch being written, so a COPY that hangs cannot hold quotes that are neither in
PostgreSQL nor on disk; if that write then fails, the batch is not queued again (its spill
file has it). If spilling fails the queue may grow to twice the bound;
beyond that the oldest quotes are dropped and counted - the one place data can be lost, logged
as ERROR. A spill file that cannot be read is renamed ``*.bad`` and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from engine.quote import Quote
from engine.sinks.store.spill import (
    read_spill_file,
    remove_spill_file,
    spill_paths,
    spill_rows,
    write_spill_file,
)
from engine.sinks.store.stats import StoreCounters

logger = logging.getLogger(__name__)

SPILL_RETRY_S: Final = 5.0
"""After a failed spill, how long the queue is kept in memory before spilling is tried again."""

Spawn = Callable[[str, Coroutine[Any, Any, None]], "asyncio.Task[None]"]
WriteRows = Callable[[Sequence[Quote]], Awaitable[None]]


class Backlog:
    """Queued and spilled quotes of one table, and the writing of them in batches."""

    def __init__(
        self,
        spill_dir: Path,
        table: str,
        *,
        max_rows: int,
        batch_rows: int,
        counters: StoreCounters,
        changed: Callable[[], None],
    ) -> None:
        self.spill_dir = spill_dir
        self._table = table
        self._max_rows = max_rows
        self._batch_rows = batch_rows
        self._c = counters
        self._changed = changed  # a spill finished: the writer and flush() look again
        self._spawn: Spawn | None = None
        self._pending: deque[list[Quote]] = deque()
        self._pending_rows = 0
        self._inflight: list[Quote] = []
        self._inflight_spilled = False  # the batch being written is also in a spill file
        self._files: list[Path] = []
        self._cursor: tuple[Path, list[Quote], int] | None = None
        self._spill_task: asyncio.Task[None] | None = None
        self._spilling = False
        self._retry_at = 0.0
        self._seq = 0
        self._dropping = False

    # -- state -------------------------------------------------------------------------------

    @property
    def rows_buffered(self) -> int:
        """Quotes in memory (queued + being written)."""
        return self._pending_rows + len(self._inflight)

    @property
    def rows_queued(self) -> int:
        return self._pending_rows

    @property
    def rows_spilled(self) -> int:
        """Quotes in spill files, waiting to be written."""
        return sum(spill_rows(p) for p in self._files)

    def has_work(self) -> bool:
        return bool(self._pending or self._files)

    def idle(self) -> bool:
        """Nothing queued, being written, spilled or being spilled."""
        return not (self._pending or self._inflight or self._files or self._spilling)

    def durable(self) -> bool:
        """Every quote is in PostgreSQL or a spill file (nothing only in memory)."""
        return (
            not self._pending
            and not self._spilling
            and (not self._inflight or self._inflight_spilled)
        )

    def load_spill_files(self) -> int:
        """Take over the spill files a previous run left; returns how many."""
        self._files = spill_paths(self.spill_dir, self._table)
        return len(self._files)

    def start(self, spawn: Spawn) -> None:
        """From now on, spill in tasks started with ``spawn`` (the owner's supervisor)."""
        self._spawn = spawn

    # -- in -----------------------------------------------------------------------------------

    def add(self, batch: list[Quote]) -> None:
        self._pending.append(batch)
        self._pending_rows += len(batch)
        if self._pending_rows > self._max_rows:
            self._over_bound()

    def _take_all(self) -> list[list[Quote]]:
        batches = list(self._pending)
        self._pending.clear()
        self._pending_rows = 0
        return batches

    def _over_bound(self) -> None:
        if not self._spilling and self._spawn is not None and time.monotonic() >= self._retry_at:
            self._spilling = True
            self._spill_task = self._spawn("spill", self._spill_queue(self._take_all()))
            return
        hard = 2 * self._max_rows
        dropped = 0
        while self._pending_rows > hard and len(self._pending) > 1:
            old = self._pending.popleft()
            self._pending_rows -= len(old)
            dropped += len(old)
        if dropped:
            self._c.dropped += dropped
            if not self._dropping:
                logger.error("quotes_dropped", extra={"rows": dropped, "bound": hard})
            self._dropping = True

    # -- out ----------------------------------------------------------------------------------

    async def write_next(self, write: WriteRows) -> None:
        """Write the oldest spill file, else up to ``batch_rows`` queued quotes, with ``write``.

        If ``write`` raises, the quotes stay in the backlog (a file's progress is remembered).
        """
        if self._files:
            await self._write_spill_file(write)
        else:
            await self._write_pending(write)

    async def _write_pending(self, write: WriteRows) -> None:
        batch: list[Quote] = []
        while self._pending and len(batch) < self._batch_rows:
            part = self._pending.popleft()
            self._pending_rows -= len(part)
            batch.extend(part)
        self._inflight = batch
        self._inflight_spilled = False
        try:
            await write(batch)
        except BaseException:
            if not self._inflight_spilled:  # else its spill file has it
                self._pending.appendleft(batch)
                self._pending_rows += len(batch)
            raise
        finally:
            self._inflight = []
            self._inflight_spilled = False

    async def _write_spill_file(self, write: WriteRows) -> None:
        path = self._files[0]
        if self._cursor is None or self._cursor[0] != path:
            try:
                quotes = await asyncio.to_thread(read_spill_file, path)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._quarantine(path, exc)
                return
            self._cursor = (path, quotes, 0)
        _, quotes, offset = self._cursor
        while offset < len(quotes):
            chunk = quotes[offset : offset + self._batch_rows]
            await write(chunk)
            offset += len(chunk)
            self._cursor = (path, quotes, offset)
        await asyncio.to_thread(remove_spill_file, path)
        self._files.pop(0)
        self._cursor = None

    def _quarantine(self, path: Path, exc: BaseException) -> None:
        aside = path.with_suffix(".bad")
        logger.error(
            "spill_file_quarantined",
            extra={
                "path": str(path),
                "moved_to": str(aside),
                "error_kind": type(exc).__name__,
                "error": str(exc)[:300],
            },
        )
        with contextlib.suppress(OSError):
            path.rename(aside)
        self._files.remove(path)

    # -- spilling -------------------------------------------------------------------------------

    async def _spill_queue(self, batches: list[list[Quote]]) -> None:
        await self._spill(batches)

    async def _spill(self, batches: list[list[Quote]], *, requeue: bool = True) -> bool:
        """Write ``batches`` to one spill file; on failure put them back in the queue (unless
        not ``requeue``: the batch being written, which its writer keeps). True if spilled."""
        quotes = [q for b in batches for q in b]
        self._seq += 1
        try:
            path = await asyncio.to_thread(
                write_spill_file, self.spill_dir, self._table, quotes, self._seq
            )
        except OSError as exc:
            for b in reversed(batches if requeue else []):  # older than anything queued since
                self._pending.appendleft(b)
                self._pending_rows += len(b)
            self._retry_at = time.monotonic() + SPILL_RETRY_S
            logger.error(
                "spill_failed",
                extra={
                    "dir": str(self.spill_dir),
                    "rows_kept_in_memory": len(quotes),
                    "retry_in_s": SPILL_RETRY_S,
                    "error_kind": type(exc).__name__,
                    "error": str(exc),
                },
            )
            return False
        else:
            self._dropping = False
            self._files.append(path)
            self._c.spilled_total += len(quotes)
            logger.info("quotes_spilled", extra={"rows": len(quotes), "path": str(path)})
            return True
        finally:
            self._spilling = False
            self._spill_task = None
            self._changed()

    async def wait_spilled(self) -> None:
        """Wait for a spill in progress (if any) to finish."""
        task = self._spill_task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def spill_all(self) -> None:
        """Spill everything still in memory now (shutdown, flush timeout), the batch being
        written included: afterwards :meth:`durable` unless a spill failed."""
        await self.wait_spilled()
        inflight = self._inflight
        if inflight and not self._inflight_spilled:
            self._spilling = True
            spilled = await self._spill([list(inflight)], requeue=False)
            # the write may have ended meanwhile: then the flag is reset by a later batch
            self._inflight_spilled = spilled and self._inflight is inflight
        if not self._pending:
            return
        self._retry_at = 0.0
        self._spilling = True
        await self._spill(self._take_all())
        # rows still pending now were either put back by a failed spill (``spill_failed``) or
        # submitted while it ran: the caller decides whether that is a loss (at exit it is)
