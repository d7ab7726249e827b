"""One batch of quotes into the quote table: COPY, de-duplication, bad-row isolation.

The batch is converted to rows and, in one transaction, ``COPY``'d (binary, asyncpg
``copy_records_to_table``) into a per-connection temporary staging table, then
``INSERT INTO <table> SELECT DISTINCT ON (symbol, market_time) ... FROM <stage> ON CONFLICT
(symbol, market_time) DO UPDATE ... WHERE the new volume is higher``: of the ways that
de-duplicate it is the fastest (``INSERT ... SELECT unnest($arrays)`` is
slower). Plain COPY straight into the table is faster still but fails on a single duplicate, so
the writer uses it while batches bring no duplicates and falls back to staging for a while after
a conflict (see :meth:`CopyWriter._copy_insert`; figures in bench/store_bench.py).

A quote's identity is (symbol, market time, volume): a volume that grew at the same market time
is a new observation, and it updates the row (the highest volume wins; the primary key stays
(symbol, market_time), so writing a batch twice never makes a second row). As an optimisation the
writer remembers the last market time and volume stored per symbol and skips a quote equal to
them (overnight and weekend, Yahoo repeats the closing quote
every cycle). Rows older than the retention cutoff are not written (``expired``); rows that
PostgreSQL refuses as data (class 22/23 errors) are isolated by bisecting the batch and counted
as rejected. In native mode with the engine managing partitions, a missing daily partition is
created on demand.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

import asyncpg

from engine.config import PostgresSettings
from engine.quote import Quote
from engine.sinks import partitions as parts
from engine.sinks.partition_ddl import Manager, create_partitions, list_partition_days
from engine.sinks.store.rows import COLUMNS, EPOCH, Row, RowEncoder, is_data_error
from engine.sinks.store.stats import StoreCounters

logger = logging.getLogger(__name__)

_EPOCH_DAY: Final = dt.date(1970, 1, 1)
_DAY_S: Final = 86_400
_LAST_WRITTEN_MAX: Final = 1_000_000
_STAGED_AFTER_CONFLICT: Final = 20
_KEY: Final = ("symbol", "market_time")


class CopyWriter:
    """Writes batches of quotes into one table (on a connection the caller acquired)."""

    def __init__(
        self,
        settings: PostgresSettings,
        table: str,
        *,
        clock: Callable[[], float],
        counters: StoreCounters,
    ) -> None:
        self._settings = settings
        self._table = table
        self._clock = clock
        self._c = counters
        self._stage = f"_ingest_stage_{table}"
        cols = ", ".join(COLUMNS)
        tbl, stage = parts.quote_ident(table), parts.quote_ident(self._stage)
        self._sql_stage = (
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {tbl} INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        updated = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in _KEY)
        # DISTINCT ON: one row per key and statement (DO UPDATE may not touch a row twice), the
        # highest volume; an existing row is updated only by a higher volume
        self._sql_insert = (
            f"INSERT INTO {tbl} ({cols}) SELECT DISTINCT ON (symbol, market_time) {cols} "  # noqa: S608
            f"FROM pg_temp.{stage} ORDER BY symbol, market_time, volume DESC NULLS LAST "
            f"ON CONFLICT (symbol, market_time) DO UPDATE SET {updated} "
            f"WHERE excluded.volume > {tbl}.volume "
            f"OR ({tbl}.volume IS NULL AND excluded.volume IS NOT NULL)"
        )
        self.manager: Manager | None = None
        """Who creates partitions in native mode (set once the table is migrated)."""
        self.known_days: set[dt.date] = set()
        """Days whose partition is known to exist (native mode, engine-managed)."""
        self._staged_left = 0  # batches to stage before plain COPY is tried again
        self._last_written: dict[str, tuple[int, int]] = {}
        """Symbol -> (market time, volume) of the newest quote stored."""

    def forget_written(self) -> None:
        """Stop trusting the remembered last stored quotes (the database may have been restored)."""
        self._last_written.clear()

    async def write(self, conn: Any, rows: list[Row], kept: list[Quote]) -> tuple[int, int]:
        """Write the ``rows`` of the ``kept`` quotes (from :meth:`rows_to_write`); returns
        (inserted, rejected). Count them with :meth:`committed` once the connection is back
        in the pool (a connection that dies on release means: retry, it was not counted)."""
        if self.manager == "engine":
            await self._ensure_partitions(conn, {q.market_time // _DAY_S for q in kept})
        return await self._insert(conn, rows, retry_partitions=True)

    def committed(self, rows: list[Row], kept: list[Quote], inserted: int, rejected: int) -> None:
        """Count a written batch and remember its newest quote per symbol."""
        self._c.written += inserted
        self._c.duplicate += len(rows) - inserted - rejected
        self._remember(kept)

    def rows_to_write(self, quotes: Sequence[Quote]) -> tuple[list[Row], list[Quote]]:
        """Rows to COPY and their quotes; counts what is skipped (repeat, expired, bad)."""
        today = parts.day_of(self._clock())
        first, last = parts.storable_days(
            today,
            retention_days=self._settings.retention_days,
            ahead_days=self._settings.partitions_ahead_days,
        )
        lo = (first - _EPOCH_DAY).days * _DAY_S
        hi = ((last - _EPOCH_DAY).days + 1) * _DAY_S
        rows: list[Row] = []
        kept: list[Quote] = []
        encode = RowEncoder().row
        lw = self._last_written
        bad = expired = dup = 0
        for q in quotes:
            if lw.get(q.symbol) == (q.market_time, q.volume):
                dup += 1
            elif not lo <= q.market_time < hi:
                expired += q.market_time < lo
                bad += q.market_time >= hi
            elif (row := encode(q)) is None:
                bad += 1
            else:
                rows.append(row)
                kept.append(q)
        self._c.duplicate += dup
        self._c.expired += expired
        if bad:
            self._reject(bad, "value cannot be stored (NUL/invalid text, non-finite, range)")
        return rows, kept

    def _reject(self, n: int, reason: str) -> None:
        self._c.rejected += n
        logger.warning("quotes_rejected", extra={"rows": n, "reason": reason[:300]})

    def _remember(self, quotes: list[Quote]) -> None:
        lw = self._last_written
        if len(lw) > _LAST_WRITTEN_MAX:
            lw.clear()
        for q in quotes:
            ident = (q.market_time, q.volume)
            if ident > lw.get(q.symbol, (-1, -1)):
                lw[q.symbol] = ident

    async def _ensure_partitions(self, conn: Any, day_numbers: set[int]) -> None:
        """Create the partitions of these days (days since the epoch) not known to exist."""
        days = {_EPOCH_DAY + dt.timedelta(days=n) for n in day_numbers}
        missing = days - self.known_days
        if missing:
            await create_partitions(conn, self._table, missing)
            self.known_days |= missing

    async def _insert(
        self, conn: Any, rows: list[Row], *, retry_partitions: bool
    ) -> tuple[int, int]:
        """(inserted, rejected); bad rows are isolated by bisection."""
        try:
            return await self._copy_insert(conn, rows), 0
        except asyncpg.CheckViolationError:
            # our tables have no CHECK constraint: 23514 means "no partition for this row"
            if not retry_partitions or self.manager != "engine":
                return await self._bisect(conn, rows)
            self.known_days = await list_partition_days(conn, self._table)
            epoch_days = {(row[0] - EPOCH).days for row in rows}
            await self._ensure_partitions(conn, epoch_days)
            return await self._insert(conn, rows, retry_partitions=False)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            return await self._bisect(conn, rows, exc)

    async def _bisect(
        self, conn: Any, rows: list[Row], exc: BaseException | None = None
    ) -> tuple[int, int]:
        if len(rows) == 1:
            self._reject(1, f"{type(exc).__name__}: {exc}" if exc else "no partition for row")
            return 0, 1
        mid = len(rows) // 2
        a = await self._insert(conn, rows[:mid], retry_partitions=False)
        b = await self._insert(conn, rows[mid:], retry_partitions=False)
        return a[0] + b[0], a[1] + b[1]

    async def _copy_insert(self, conn: Any, rows: list[Row]) -> int:
        """Insert ``rows``, skipping those already stored (a higher volume updates its row);
        returns how many were new or updated.

        Plain COPY into the table is ~1.7x faster than staging, but fails as a whole on one
        duplicate; so it is tried only while recent batches had no duplicate, and after a
        conflict the next :data:`_STAGED_AFTER_CONFLICT` batches go through the staging table.
        """
        if self._staged_left <= 0:
            try:
                async with conn.transaction():
                    await conn.copy_records_to_table(self._table, records=rows, columns=COLUMNS)
                return len(rows)
            except asyncpg.UniqueViolationError:
                self._staged_left = _STAGED_AFTER_CONFLICT
        self._staged_left -= 1
        async with conn.transaction():
            await conn.execute(self._sql_stage)
            await conn.copy_records_to_table(self._stage, records=rows, columns=COLUMNS)
            status: str = await conn.execute(self._sql_insert)
        return int(status.rsplit(" ", 1)[-1])
