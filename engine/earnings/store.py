"""PostgreSQL side of the earnings calendar: the upsert with reschedule detection, runs, reads.

The tables and their migration are :mod:`engine.earnings.migration`'s. Upsert
(:meth:`EarningsStore.upsert`), in one transaction under a per-table advisory lock (a manual
``earnings sync`` and the scheduled one cannot interleave):

1. load the stored rows of the fetched symbols within 45 days of the window;
2. :func:`~engine.earnings.plan.plan_upsert` (pure) decides per fetched event: unchanged,
   update, move (a reschedule: the row moves to the new date and its announcements are reset)
   or insert;
3. execute it; each move and start-time change is logged (``earnings_rescheduled``,
   ``earnings_time_changed``) and appended to ``<table>_changes``.

Connections come from :func:`engine.deps.postgres.create_pool`; every failure is raised as
:class:`~engine.errors.StoreError` through :func:`engine.deps.postgres.translate`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any, Final, Literal

import msgspec

from engine.config import PostgresSettings
from engine.deps import postgres
from engine.earnings.migration import MigrationOutcome, lock_table, migrate_earnings, table_names
from engine.earnings.models import EarningsEvent, SyncStatus, Timing, Trigger
from engine.earnings.plan import COLUMNS, MATCH_DAYS, Key, Move, UpsertPlan, plan_upsert
from engine.sinks.partitions import quote_ident

log = logging.getLogger(__name__)

AnnounceColumn = Literal["announced_at", "reported_announced_at"]
_POOL_SIZE: Final = 2


class UpsertResult(msgspec.Struct, frozen=True):
    inserted: int
    updated: int
    unchanged: int
    moves: list[Move]
    time_changes: list[Move]


class SyncRun(msgspec.Struct, frozen=True, kw_only=True):
    sync_date: dt.date
    trigger: Trigger
    covers: dt.datetime
    started_at: dt.datetime
    finished_at: dt.datetime
    status: SyncStatus
    source: str | None
    summary: dict[str, Any]


def row_values(e: EarningsEvent) -> tuple[Any, ...]:
    """The stored columns of ``e``, in :data:`~engine.earnings.plan.COLUMNS` order."""
    return tuple(getattr(e, c) for c in COLUMNS)


def row_event(r: Any) -> EarningsEvent:
    """A stored row (any mapping of the columns) as an event."""
    timing: Timing = r["timing"]
    return EarningsEvent(
        symbol=r["symbol"],
        event_date=r["event_date"],
        event_time=r["event_time"].astimezone(dt.UTC),
        timing=timing,
        company_name=r["company_name"],
        event_name=r["event_name"],
        market_cap=r["market_cap"],
        eps_estimate=r["eps_estimate"],
        eps_reported=r["eps_reported"],
        surprise_pct=r["surprise_pct"],
        source=r["source"],
    )


def plan_rows(plan: UpsertPlan, now: dt.datetime) -> dict[str, list[tuple[Any, ...]]]:
    """The parameter rows of each statement that executes ``plan`` (pure)."""
    changes = [(m, "rescheduled") for m in plan.moves]
    changes += [(m, "time_changed") for m in plan.time_changes]
    return {
        "insert": [(*row_values(e), now) for e in plan.inserts],
        "update": [(*row_values(e), now) for e in plan.updates],
        "move": [(m.old.symbol, m.old.event_date, *row_values(m.new)[1:], now) for m in plan.moves],
        "change": [
            (
                m.new.symbol,
                m.old.event_date,
                m.new.event_date,
                m.old.event_time,
                m.new.event_time,
                kind,
                m.new.source,
                now,
            )
            for m, kind in changes
        ],
    }


def statements(names: dict[str, str]) -> dict[str, str]:
    """The SQL of the store for the tables ``names`` (:func:`~.migration.table_names`)."""
    t = quote_ident(names["table"])
    changes, syncs = quote_ident(names["changes_table"]), quote_ident(names["syncs_table"])
    cols = ", ".join(COLUMNS)
    params = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
    now = f"${len(COLUMNS) + 1}"
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(COLUMNS, 1) if i > 2)
    return {
        "select": f"SELECT {cols} FROM {t} "  # noqa: S608
        "WHERE symbol = ANY($1::text[]) AND event_date BETWEEN $2 AND $3",
        "insert": f"INSERT INTO {t} ({cols}, first_seen, last_updated) "  # noqa: S608
        f"VALUES ({params}, {now}, {now}) ON CONFLICT (symbol, event_date) DO NOTHING",
        "update": f"UPDATE {t} SET {sets}, last_updated = {now} "  # noqa: S608
        "WHERE symbol = $1 AND event_date = $2",
        "move": f"UPDATE {t} SET event_date = $3, event_time = $4, timing = $5, "  # noqa: S608
        "company_name = $6, event_name = $7, market_cap = $8, eps_estimate = $9, "
        "eps_reported = $10, surprise_pct = $11, source = $12, last_updated = $13, "
        "announced_at = NULL, reported_announced_at = NULL "
        "WHERE symbol = $1 AND event_date = $2",
        "change": f"INSERT INTO {changes} (symbol, old_date, new_date, old_time, "  # noqa: S608
        "new_time, kind, source, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        "covered": f"SELECT max(covers) FROM {syncs} "  # noqa: S608
        "WHERE sync_date = $1 AND status = 'complete'",
        "record_run": f"INSERT INTO {syncs} (sync_date, trigger, covers, started_at, "  # noqa: S608
        "finished_at, status, source, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
        "events": f"SELECT {cols} FROM {t} "  # noqa: S608
        "WHERE event_date BETWEEN $1 AND $2 ORDER BY event_date, symbol",
    }


def announcement_sql(names: dict[str, str], column: AnnounceColumn) -> tuple[str, str]:
    """(select the unannounced keys, mark keys announced) for announcement ``column``."""
    t = quote_ident(names["table"])
    unannounced = (
        f"SELECT t.symbol, t.event_date FROM {t} t "  # noqa: S608
        "JOIN unnest($1::text[], $2::date[]) AS k(symbol, event_date) "
        f"USING (symbol, event_date) WHERE t.{column} IS NULL"
    )
    mark = (
        f"UPDATE {t} t SET {column} = $3 "  # noqa: S608
        "FROM unnest($1::text[], $2::date[]) AS k(symbol, event_date) "
        f"WHERE t.symbol = k.symbol AND t.event_date = k.event_date AND t.{column} IS NULL"
    )
    return unannounced, mark


def _times(m: Move) -> dict[str, str]:
    return {
        "symbol": m.new.symbol,
        "old_time": m.old.event_time.isoformat(),
        "new_time": m.new.event_time.isoformat(),
    }


def log_changes(plan: UpsertPlan) -> None:
    """Log each reschedule (warning) and start-time change of ``plan``."""
    for m in plan.moves:
        dates = {"old_date": m.old.event_date.isoformat(), "new_date": m.new.event_date.isoformat()}
        log.warning("earnings_rescheduled", extra=_times(m) | dates | {"source": m.new.source})
    for m in plan.time_changes:
        log.info(
            "earnings_time_changed", extra=_times(m) | {"event_date": m.new.event_date.isoformat()}
        )


class EarningsStore:
    """Owner of a small asyncpg pool; ``async with EarningsStore.connect(pg, table) as s``."""

    def __init__(self, pool: Any, table: str) -> None:
        self._pool = pool
        self.names = table_names(table)
        self._sql = statements(self.names)
        self._closed = False

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: PostgresSettings, table: str) -> AsyncIterator[EarningsStore]:
        pool = await postgres.create_pool(settings, purpose="earnings", max_size=_POOL_SIZE)
        async with aclosing(cls(pool, table)) as store:
            await store.migrate()
            yield store

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.close()

    @property
    def table(self) -> str:
        return self.names["table"]

    @asynccontextmanager
    async def _conn(self, what: str) -> AsyncIterator[Any]:
        """A pooled connection; failures while acquiring or using it become StoreError."""
        with postgres.translate(what):
            async with self._pool.acquire() as conn:
                yield conn

    async def migrate(self) -> MigrationOutcome:
        async with self._conn(f"migration of {self.table} failed") as conn:
            return await migrate_earnings(conn, self.table)

    async def upsert(
        self, events: Sequence[EarningsEvent], start: dt.date, end: dt.date, now: dt.datetime
    ) -> UpsertResult:
        """Store ``events`` fetched for ``[start, end]`` (see the module docstring)."""
        symbols = sorted({e.symbol for e in events})
        lo, hi = start - dt.timedelta(days=MATCH_DAYS), end + dt.timedelta(days=MATCH_DAYS)
        async with self._conn(f"upsert into {self.table} failed") as conn, conn.transaction():
            await lock_table(conn, self.table)
            rows = await conn.fetch(self._sql["select"], symbols, lo, hi)
            plan = plan_upsert([row_event(r) for r in rows], events)
            for statement, params in plan_rows(plan, now).items():
                if params:
                    await conn.executemany(self._sql[statement], params)
        log_changes(plan)
        return UpsertResult(
            inserted=len(plan.inserts),
            updated=len(plan.updates),
            unchanged=plan.unchanged,
            moves=plan.moves,
            time_changes=plan.time_changes,
        )

    async def unannounced(self, keys: Iterable[Key], column: AnnounceColumn) -> set[Key]:
        """The ``keys`` whose ``column`` announcement has not been made yet."""
        syms, days = unzip_keys(keys)
        sql, _ = announcement_sql(self.names, column)
        async with self._conn(f"reading announcements of {self.table} failed") as conn:
            rows = await conn.fetch(sql, syms, days)
        return {(r["symbol"], r["event_date"]) for r in rows}

    async def mark_announced(
        self, keys: Iterable[Key], column: AnnounceColumn, at: dt.datetime
    ) -> None:
        syms, days = unzip_keys(keys)
        if not syms:
            return
        _, sql = announcement_sql(self.names, column)
        async with self._conn(f"recording announcements in {self.table} failed") as conn:
            await conn.execute(sql, syms, days, at)

    async def covered(self, day: dt.date) -> dt.datetime | None:
        """The newest slot a completed sync of ``day`` accounts for."""
        async with self._conn(f"reading {self.names['syncs_table']} failed") as conn:
            value: dt.datetime | None = await conn.fetchval(self._sql["covered"], day)
        return value

    async def record_run(self, run: SyncRun) -> None:
        summary = msgspec.json.encode(run.summary).decode()
        async with self._conn(f"recording a run in {self.names['syncs_table']} failed") as conn:
            await conn.execute(
                self._sql["record_run"],
                run.sync_date,
                run.trigger,
                run.covers,
                run.started_at,
                run.finished_at,
                run.status,
                run.source,
                summary,
            )

    async def events(self, start: dt.date, end: dt.date) -> list[EarningsEvent]:
        """Stored events with dates in ``[start, end]``, by (date, symbol)."""
        async with self._conn(f"reading {self.table} failed") as conn:
            rows = await conn.fetch(self._sql["events"], start, end)
        return [row_event(r) for r in rows]


def unzip_keys(keys: Iterable[Key]) -> tuple[list[str], list[dt.date]]:
    """Sorted, de-duplicated keys as (symbols, dates) arrays for ``unnest``."""
    pairs = sorted(set(keys))
    return [s for s, _ in pairs], [d for _, d in pairs]
