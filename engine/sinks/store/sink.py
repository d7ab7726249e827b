"""What the store's batch writer drains: the backlog into the table, and the outage bookkeeping.

Any failure that is not a bad row (connection refused/reset, ``pg_terminate_backend``, timeouts,
read-only standby, dropped table...) keeps the batch and marks PostgreSQL unavailable: one
WARNING and one ``outages`` count per outage, not per row or retry; one INFO line when it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from asyncpg.exceptions import _base as asyncpg_base

from engine.deps import postgres as pg
from engine.errors import StoreError
from engine.quote import Quote
from engine.sinks.batch_writer import BatchResult, Outage
from engine.sinks.store.backlog import Backlog
from engine.sinks.store.copy_writer import CopyWriter
from engine.sinks.store.table import QuoteTable

logger = logging.getLogger(__name__)

_EXPECTED_FAILURES: Final = (
    *pg.ERRORS,
    asyncpg_base.InternalClientError,  # protocol state after a connection died mid-COPY
    StoreError,
)


class StoreSink:
    """The store's side of :class:`~engine.sinks.batch_writer.BatchWriter`."""

    def __init__(
        self,
        table: QuoteTable,
        backlog: Backlog,
        copy: CopyWriter,
        outage: Outage,
        prepare: Callable[[], Awaitable[None]],
    ) -> None:
        self._table = table
        self._backlog = backlog
        self._copy = copy
        self.outage = outage
        self._prepare = prepare  # connect, migrate and maintain: until it works
        self.last_batch_rows = 0
        self.last_batch_s: float | None = None

    def has_work(self) -> bool:
        # not ready: keep trying to connect in the background, work or not
        return not self._table.ready or self._backlog.has_work()

    async def write_batch(self) -> BatchResult:
        if not self._table.ready:
            await self._prepare()
        else:
            await self._backlog.write_next(self.write_quotes)
        return BatchResult.WRITTEN

    async def write_quotes(self, quotes: Sequence[Quote]) -> None:
        """One batch into the table (raises :class:`StoreError` & co. on an outage)."""
        started = time.perf_counter()
        rows, kept = self._copy.rows_to_write(quotes)
        if rows:
            async with self._table.acquire() as conn:
                inserted, rejected = await self._copy.write(conn, rows, kept)
            self._copy.committed(rows, kept, inserted, rejected)
        self.last_batch_rows = len(quotes)
        self.last_batch_s = time.perf_counter() - started

    def batch_failed(self, exc: Exception) -> None:
        self.mark_down(exc)

    def batch_written(self) -> None:
        self.mark_up()

    def note_error(self, exc: BaseException) -> None:
        self._table.note_error(self.outage.record_error(exc))

    def mark_down(self, exc: BaseException | None) -> None:
        """PostgreSQL failed (``exc``; None: unreachable at start-up, already logged)."""
        if exc is not None:
            self.note_error(exc)
            if not isinstance(exc, _EXPECTED_FAILURES):
                logger.error(  # a bug rather than an outage: say so, with the traceback
                    "store_write_failed",
                    exc_info=exc,
                    extra={"table": self._table.name, "error_kind": type(exc).__name__},
                )
        if not self.outage.down():
            logger.debug("pg_retry_failed", extra={"table": self._table.name})
            return
        if exc is not None:
            logger.warning(
                "pg_unavailable",
                extra={
                    "table": self._table.name,
                    "error_kind": self.outage.last_error_kind,
                    "error": str(exc)[:300],
                    "rows_buffered": self._backlog.rows_buffered,
                },
            )

    def mark_up(self) -> None:
        outage_s = self.outage.up()
        if outage_s is None:
            return
        self._copy.forget_written()  # the database may have been restored: do not trust it
        logger.info(
            "pg_recovered",
            extra={
                "table": self._table.name,
                "outage_s": round(outage_s, 3),
                "rows_buffered": self._backlog.rows_queued,
                "rows_spilled": self._backlog.rows_spilled,
            },
        )
