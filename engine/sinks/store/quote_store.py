"""PostgreSQL storage of raw quotes: non-blocking submit, COPY batches, outage buffering and spill.

Data path
    ``submit(quotes)`` only appends to the in-memory backlog (:mod:`.backlog`) and returns: the
    publisher's event loop never waits for PostgreSQL. A background writer
    (:class:`~engine.sinks.batch_writer.BatchWriter` draining a :class:`~.sink.StoreSink`) takes
    up to ``batch_rows`` queued quotes and writes them with COPY (:mod:`.copy_writer`).

Exactly once
    The primary key (symbol, market_time) is the de-duplication key, so writing a batch twice
    (a retry after a connection died mid-commit, a spill file replayed after a crash) never makes
    a second row: delivery to PostgreSQL is at-least-once, the table holds each quote once.

Outages
    A failed batch is kept, PostgreSQL is marked unavailable (:mod:`.sink`) and the writer
    retries with capped exponential backoff. Past ``max_buffered_rows`` queued quotes the
    backlog spills to ``spill_dir``; spill files, also those left by a previous run of the same
    table, are replayed oldest first when the database is back.

Start-up
    ``async with QuoteStore.connect(settings)`` tries ``connect_attempts`` times (backoff from
    ``connect_backoff_s``) to connect and migrate (:mod:`.table`); if the database stays
    unreachable it logs one clear ERROR and runs without it, buffering, while the writer keeps
    trying in the background. Configuration mistakes (bad password, unknown database, a schema
    newer than this engine) raise :class:`~engine.errors.StoreConfigError` (not retryable).

Partitions
    In ``native`` mode the store runs partition maintenance (:mod:`.maintenance`) at start-up
    and every ``maintenance_interval_s``; missing daily partitions are also created on demand
    when a batch needs them. In ``timescale`` mode TimescaleDB's policies do it.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from engine.config import PostgresSettings
from engine.deps import postgres as pg
from engine.errors import StoreError
from engine.quote import Quote
from engine.retry import RetryPolicy, backoff_s, retry
from engine.runtime.lifecycle import AsyncResource, BackgroundTasks
from engine.sinks import partitions as parts
from engine.sinks.batch_writer import BatchWriter, Outage
from engine.sinks.migrations import Mode
from engine.sinks.partition_ddl import Manager, list_partition_days
from engine.sinks.store.backlog import Backlog
from engine.sinks.store.copy_writer import CopyWriter
from engine.sinks.store.maintenance import maintain_periodically, maintain_table
from engine.sinks.store.sink import StoreSink
from engine.sinks.store.stats import StoreCounters
from engine.sinks.store.table import QuoteTable
from engine.stats import StoreStats

logger = logging.getLogger(__name__)

BACKOFF_MAX_S: Final = 30.0
"""Longest wait between two tries to reach PostgreSQL (start-up and outages)."""


class Durability(enum.Enum):
    """Where :meth:`QuoteStore.make_durable` left the quotes submitted so far."""

    COMMITTED = "committed"
    """All in PostgreSQL."""
    SPILLED = "spilled"
    """In PostgreSQL or in fsync'd spill files (written by this or the next run)."""
    NOT_DURABLE = "not_durable"
    """Some are only in memory (the spill failed): they must stay in the ring."""

    @property
    def durable(self) -> bool:
        return self is not Durability.NOT_DURABLE


class QuoteStore(AsyncResource):
    """Owner of the PostgreSQL pool; ``async with QuoteStore.connect(settings) as store``."""

    def __init__(
        self,
        settings: PostgresSettings,
        *,
        clock: Callable[[], float] = time.time,
        batch_rows: int = 10_000,
        maintenance_interval_s: float = 3600.0,
        allow_timescale: bool = True,
        allow_partman: bool = True,
    ) -> None:
        table = parts.check_table_name(settings.table)
        self._settings = settings
        self._clock = clock
        self._maintenance_interval_s = maintenance_interval_s
        self._c = StoreCounters()
        self._db = QuoteTable(
            settings, table, allow_timescale=allow_timescale, allow_partman=allow_partman
        )
        self._copy = CopyWriter(settings, table, clock=clock, counters=self._c)
        self._backoff = functools.partial(
            backoff_s, base_s=settings.connect_backoff_s, cap_s=BACKOFF_MAX_S, jitter=0.0
        )
        outage = Outage()
        self._backlog = Backlog(
            Path(settings.spill_dir),
            table,
            max_rows=settings.max_buffered_rows,
            batch_rows=batch_rows,
            counters=self._c,
            changed=self._backlog_changed,
        )
        self._sink = StoreSink(self._db, self._backlog, self._copy, outage, self._prepare)
        self._writer = BatchWriter(self._sink, self._backoff, outage)
        self._tasks = BackgroundTasks(f"store:{table}")
        self._started = False
        self._closed = False

    @classmethod
    def connect(cls, settings: PostgresSettings, **kwargs: Any) -> QuoteStore:
        """The store, to be entered with ``async with`` (which connects and migrates)."""
        return cls(settings, **kwargs)

    # -- public API ----------------------------------------------------------------------------

    @property
    def table(self) -> str:
        return self._db.name

    @property
    def mode(self) -> Mode | None:
        return self._db.mode

    @property
    def partition_manager(self) -> Manager | None:
        """``engine`` or ``pg_partman`` in native mode; None otherwise or before migration."""
        return self._db.manager

    @property
    def stats(self) -> StoreStats:
        c, outage = self._c, self._writer.outage
        return StoreStats(
            available=outage.available and self._db.ready,
            mode=self._db.mode,
            rows_submitted=c.submitted,
            rows_written=c.written,
            rows_duplicate=c.duplicate,
            rows_expired=c.expired,
            rows_rejected=c.rejected,
            rows_dropped=c.dropped,
            rows_buffered=self._backlog.rows_buffered,
            rows_spilled=self._backlog.rows_spilled,
            rows_spilled_total=c.spilled_total,
            outages=outage.outages,
            last_error_kind=outage.last_error_kind,
            last_batch_rows=self._sink.last_batch_rows,
            last_batch_s=self._sink.last_batch_s,
        )

    def submit(self, quotes: Sequence[Quote]) -> None:
        """Queue quotes for storage. Never blocks and never raises on an outage."""
        if not self._settings.enabled or not quotes:
            return
        if self._closed:
            raise StoreError("QuoteStore.submit() after aclose()")
        batch = list(quotes)
        self._c.submitted += len(batch)
        self._writer.wake()
        self._backlog.add(batch)

    async def make_durable(self, timeout_s: float) -> Durability:
        """Wait until everything queued or spilled is in PostgreSQL (``COMMITTED``).

        On timeout, whatever is still in memory - the batch being written included - is spilled
        to disk (fsync'd): ``SPILLED``, nothing is lost, it is written by this or the next run.
        If that spill fails, ``NOT_DURABLE``: the caller must keep its copy (the ring records).
        """
        if not self._settings.enabled or not self._started:
            return Durability.COMMITTED
        if await self._writer.wait_until(self._backlog.idle, timeout_s):
            return Durability.COMMITTED
        await self._backlog.spill_all()
        return Durability.SPILLED if self._backlog.durable() else Durability.NOT_DURABLE

    async def flush(self, timeout_s: float) -> bool:
        """:meth:`make_durable`; True if everything is in PostgreSQL itself."""
        return await self.make_durable(timeout_s) is Durability.COMMITTED

    async def insert_missing(self, quotes: Sequence[Quote]) -> int:
        """Write ``quotes`` now, on a connection of the pool, skipping those already stored;
        returns how many rows were new. Raises :class:`~engine.errors.StoreError` if PostgreSQL
        cannot take them (the caller may :meth:`submit` them instead)."""
        if not self._db.ready:
            raise StoreError("PostgreSQL is not available")
        rows, kept = self._copy.rows_to_write(quotes)
        if not rows:
            return 0
        try:
            async with self._db.acquire() as conn:
                inserted, rejected = await self._copy.write(conn, rows, kept)
        except StoreError:
            raise
        except Exception as exc:
            raise pg.error_for(exc, "PostgreSQL write") from exc
        self._copy.committed(rows, kept, inserted, rejected)
        return inserted

    async def run_maintenance(self, today: dt.date | None = None) -> parts.PartitionPlan | None:
        """Partition maintenance now (native mode); returns the engine's plan.

        ``today`` defaults to the store's clock. With pg_partman, its ``run_maintenance`` runs
        instead (on the database's clock) and None is returned.
        """
        if self._db.mode != "native" or self._db.pool is None:
            return None
        day = today or parts.day_of(self._clock())
        async with self._db.acquire() as conn:
            plan = await maintain_table(conn, self._settings, day, partman=self._db.partman)
            if plan is not None:
                self._copy.known_days = await list_partition_days(conn, self._db.name)
        return plan

    async def start(self) -> None:
        """Connect and migrate (bounded retries), then start the background tasks."""
        if self._started or not self._settings.enabled:
            return
        if files := self._backlog.load_spill_files():
            logger.info(
                "spill_files_found",
                extra={
                    "files": files,
                    "rows": self._backlog.rows_spilled,
                },
            )
        await self._startup_connect()
        await self._tasks.start()
        self._started = True
        self._tasks.loop("writer", self._writer.run())
        self._tasks.loop("maintenance", self._maintain_periodically())
        self._backlog.start(self._tasks.spawn)
        self._writer.wake()

    async def aclose(self) -> None:
        """Stop the background tasks, spill what is still in memory, close the pool."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        try:
            await self._tasks.stop()  # waits for a spill in progress
        finally:
            await self._backlog.spill_all()
            if not self._backlog.durable():  # only in memory, and the process is ending
                logger.error("quotes_lost", extra={"rows": self._backlog.rows_queued})
            await self._db.close()

    # -- start-up and background work ----------------------------------------------------------

    async def _startup_connect(self) -> None:
        s = self._settings

        def retried(attempt: int, exc: BaseException, delay_s: float) -> None:
            self._sink.note_error(exc)
            logger.warning(
                "pg_connect_retried",
                extra={
                    "attempt": attempt,
                    "attempts": s.connect_attempts,
                    "retry_in_s": delay_s,
                    "dsn": s.dsn.redacted(),
                    "error_kind": type(exc).__name__,
                    "error": str(exc),
                },
            )

        policy = RetryPolicy(
            attempts=s.connect_attempts,
            base_s=s.connect_backoff_s,
            cap_s=BACKOFF_MAX_S,
            jitter=0.0,
        )
        try:
            await retry(self._prepare, policy, on_retry=retried)
            return
        except StoreError as exc:
            if not exc.retryable:
                await self._db.close()
                raise
            self._sink.note_error(exc)
        # The engine runs on without PostgreSQL: quotes are buffered (then spilled to
        # spill_dir) and written when it is back.
        logger.error(
            "pg_unreachable_at_startup",
            extra={
                "attempts": s.connect_attempts,
                "dsn": s.dsn.redacted(),
                "spill_dir": str(self._backlog.spill_dir),
                "error_kind": self._writer.outage.last_error_kind,
            },
        )
        self._sink.mark_down(None)

    async def _prepare(self) -> None:
        """Connect and migrate, and (native mode) maintain the partitions."""
        await self._db.prepare()
        self._copy.manager = self._db.manager
        if self._db.mode != "native":
            return
        try:
            await self.run_maintenance()
        except StoreError:
            raise
        except Exception as exc:
            raise pg.error_for(exc, "PostgreSQL start-up") from exc

    async def _maintain_periodically(self) -> None:
        await maintain_periodically(
            self.run_maintenance,
            self._maintenance_interval_s,
            due=lambda: self._db.ready and self._db.mode == "native",
            stopped=lambda: self._writer.closing,
            sleep=self._writer.pause,  # ends early once the store closes
        )

    def _backlog_changed(self) -> None:
        self._writer.wake()
        self._writer.progressed()
