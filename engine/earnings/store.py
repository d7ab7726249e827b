"""PostgreSQL side of the earnings calendar: migration, upsert with reschedule detection, runs.

Schema (``schemas/earnings/pg_v001_earnings_calendar.sql``): ``<table>`` keyed by (symbol,
event_date), ``<table>_changes`` (every reschedule and start-time change) and ``<table>_syncs``
(one row per sync run, which is how the scheduler knows whether today's sync has run). The
migration is versioned like ``market_data``'s - same ``schemas/`` conventions, same
``ingestion_schema_migrations`` bookkeeping, its own line per table name - but lives in its own
directory so the two tables' version sequences stay independent.

Upsert (:meth:`EarningsStore.upsert`), in one transaction under a per-table advisory lock (a
manual ``earnings sync`` and the scheduled one cannot interleave):

1. load the stored rows of the fetched symbols within 45 days of the window;
2. :func:`plan_upsert` (pure) decides per fetched event: *unchanged* (nothing written, so a
   repeated sync changes nothing, ``last_updated`` included), *update* (a value changed; missing
   values never erase known ones, so a reported EPS or a name survives a poorer source), *move*
   (no row at this date, but the same symbol has an unreported row within 45 days - a quarter is
   ~91 - that this fetch did not confirm and whose event name does not contradict: the report
   was rescheduled, the row moves to the new date and its announcements are reset) or *insert*;
3. execute it; each move and start-time change is logged (``earnings_rescheduled``,
   ``earnings_time_changed``) and appended to ``<table>_changes``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, Literal

import asyncpg
import msgspec

from engine.config import PostgresSettings
from engine.earnings.source import EarningsEvent, Timing
from engine.errors import StoreConfigError, StoreError
from engine.sinks.migrations import (
    MIGRATIONS_TABLE,
    SCHEMA_DIR,
    load_migrations,
    recorded_state,
    render,
)
from engine.sinks.partitions import check_table_name, quote_ident

log = logging.getLogger(__name__)

EARNINGS_SCHEMA_DIR: Final = SCHEMA_DIR / "earnings"
MATCH_DAYS: Final = 45
_ADVISORY_NS: Final = 0x1A6E58  # "ingestion earnings" (migrations use 0x1A6E57)
_COLUMNS: Final = (
    "symbol", "event_date", "event_time", "timing", "company_name", "event_name", "market_cap",
    "eps_estimate", "eps_reported", "surprise_pct", "source",
)  # fmt: skip
_DATA_FIELDS: Final = _COLUMNS[2:]
Key = tuple[str, dt.date]
AnnounceColumn = Literal["announced_at", "reported_announced_at"]


def table_names(table: str) -> dict[str, str]:
    """The schema file's variables for calendar table ``table``."""
    check_table_name(table)
    return {
        "table": table,
        "changes_table": f"{table}_changes",
        "syncs_table": f"{table}_syncs",
        "date_index": f"{table}_date_idx",
        "changes_index": f"{table}_changes_symbol_idx",
        "syncs_index": f"{table}_syncs_date_idx",
    }


class MigrationOutcome(msgspec.Struct, frozen=True):
    table: str
    from_version: int
    to_version: int
    applied: tuple[int, ...]


async def migrate_earnings(
    conn: Any, table: str, *, schema_dir: Path = EARNINGS_SCHEMA_DIR
) -> MigrationOutcome:
    """Bring the earnings tables to the newest version (idempotent, concurrency-safe)."""
    names = table_names(table)
    migrations = load_migrations(schema_dir)
    latest = migrations[-1].version if migrations else 0
    bootstrap = (SCHEMA_DIR / "pg_bootstrap.sql").read_text(encoding="utf-8")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _ADVISORY_NS, table)
        await conn.execute(bootstrap)
        current, _ = await recorded_state(conn, table)
        if current and not await conn.fetchval("SELECT to_regclass($1)", quote_ident(table)):
            log.warning("earnings_table_missing", extra={"table": table, "version": current})
            await conn.execute(
                f"DELETE FROM {MIGRATIONS_TABLE} WHERE table_name = $1",  # noqa: S608
                table,
            )
            current = 0
        if current > latest:
            raise StoreConfigError(
                f"table {table} is at schema version {current}, newer than this engine knows "
                f"({latest}); upgrade ingestion-agent"
            )
        applied: list[int] = []
        for mig in migrations[current:]:
            await conn.execute(render(mig.sql("native"), names))
            await conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} "  # noqa: S608
                "(table_name, version, description, mode) VALUES ($1, $2, $3, 'native')",
                table,
                mig.version,
                mig.description,
            )
            applied.append(mig.version)
    if applied:
        log.info(
            "schema_migrated", extra={"table": table, "from_version": current, "to_version": latest}
        )
    return MigrationOutcome(table, current, latest, tuple(applied))


# -- planning (pure) ---------------------------------------------------------------------------


class Move(msgspec.Struct, frozen=True):
    old: EarningsEvent
    new: EarningsEvent


class UpsertPlan(msgspec.Struct):
    inserts: list[EarningsEvent] = msgspec.field(default_factory=list)
    updates: list[EarningsEvent] = msgspec.field(default_factory=list)
    moves: list[Move] = msgspec.field(default_factory=list)
    time_changes: list[Move] = msgspec.field(default_factory=list)
    unchanged: int = 0


def merge(old: EarningsEvent, new: EarningsEvent) -> EarningsEvent:
    """``new`` with its missing values taken from ``old`` (a poorer source erases nothing)."""
    changes = {
        f: getattr(old, f)
        for f in ("company_name", "event_name", "market_cap", "eps_estimate", "eps_reported")
        if getattr(new, f) is None and getattr(old, f) is not None
    }
    if new.eps_reported is None and old.eps_reported is not None:
        changes["surprise_pct"] = old.surprise_pct
    return msgspec.structs.replace(new, **changes) if changes else new


def _same(a: EarningsEvent, b: EarningsEvent) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in _DATA_FIELDS)


def _move_candidate(
    e: EarningsEvent,
    rows: Sequence[EarningsEvent],
    fetched: set[Key],
    claimed: set[Key],
    match_days: int,
) -> EarningsEvent | None:
    best: EarningsEvent | None = None
    for r in rows:
        gap = abs((r.event_date - e.event_date).days)
        if (
            r.key in fetched
            or r.key in claimed
            or r.eps_reported is not None
            or gap > match_days
            or (r.event_name and e.event_name and r.event_name != e.event_name)
        ):
            continue
        if best is None or gap < abs((best.event_date - e.event_date).days):
            best = r
    return best


def plan_upsert(
    existing: Iterable[EarningsEvent],
    fetched: Sequence[EarningsEvent],
    *,
    match_days: int = MATCH_DAYS,
) -> UpsertPlan:
    """What to write for ``fetched`` given the stored rows (see the module docstring)."""
    by_key = {r.key: r for r in existing}
    by_symbol: dict[str, list[EarningsEvent]] = {}
    for r in by_key.values():
        by_symbol.setdefault(r.symbol, []).append(r)
    fetched_keys = {e.key for e in fetched}
    claimed: set[Key] = set()
    plan = UpsertPlan()
    for e in sorted(fetched, key=lambda x: x.key):
        cur = by_key.get(e.key)
        if cur is not None:
            new = merge(cur, e)
            if _same(cur, new):
                plan.unchanged += 1
                continue
            plan.updates.append(new)
            if new.event_time != cur.event_time:
                plan.time_changes.append(Move(cur, new))
            continue
        old = _move_candidate(e, by_symbol.get(e.symbol, ()), fetched_keys, claimed, match_days)
        if old is None:
            plan.inserts.append(e)
            continue
        claimed.add(old.key)
        plan.moves.append(Move(old, merge(old, e)))
    return plan


# -- the store ---------------------------------------------------------------------------------


class UpsertResult(msgspec.Struct, frozen=True):
    inserted: int
    updated: int
    unchanged: int
    moves: list[Move]
    time_changes: list[Move]


class SyncRun(msgspec.Struct, frozen=True, kw_only=True):
    sync_date: dt.date
    trigger: Literal["schedule", "manual"]
    covers: dt.datetime
    started_at: dt.datetime
    finished_at: dt.datetime
    status: Literal["complete", "failed"]
    source: str | None
    summary: dict[str, Any]


def _row_values(e: EarningsEvent) -> tuple[Any, ...]:
    return tuple(getattr(e, c) for c in _COLUMNS)


def _event(r: Any) -> EarningsEvent:
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


def _translate(exc: BaseException, what: str) -> StoreError:
    return StoreError(f"{what} failed: {type(exc).__name__}: {str(exc)[:300]}")


class EarningsStore:
    """Owner of a small asyncpg pool; ``async with EarningsStore.connect(pg, table) as s``."""

    def __init__(self, pool: Any, table: str) -> None:
        self._pool = pool
        self.names = table_names(table)
        n = {k: quote_ident(v) for k, v in self.names.items()}
        self._t, self._changes, self._syncs = n["table"], n["changes_table"], n["syncs_table"]
        cols = ", ".join(_COLUMNS)
        params = ", ".join(f"${i}" for i in range(1, len(_COLUMNS) + 1))
        now = f"${len(_COLUMNS) + 1}"
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(_COLUMNS, 1) if i > 2)
        self._sql_select = (
            f"SELECT {cols} FROM {self._t} "  # noqa: S608
            "WHERE symbol = ANY($1::text[]) AND event_date BETWEEN $2 AND $3"
        )
        self._sql_insert = (
            f"INSERT INTO {self._t} ({cols}, first_seen, last_updated) "  # noqa: S608
            f"VALUES ({params}, {now}, {now}) ON CONFLICT (symbol, event_date) DO NOTHING"
        )
        self._sql_update = (
            f"UPDATE {self._t} SET {sets}, last_updated = {now} "  # noqa: S608
            "WHERE symbol = $1 AND event_date = $2"
        )
        self._sql_move = (
            f"UPDATE {self._t} SET event_date = $3, event_time = $4, timing = $5, "  # noqa: S608
            "company_name = $6, event_name = $7, market_cap = $8, eps_estimate = $9, "
            "eps_reported = $10, surprise_pct = $11, source = $12, last_updated = $13, "
            "announced_at = NULL, reported_announced_at = NULL "
            "WHERE symbol = $1 AND event_date = $2"
        )
        self._sql_change = (
            f"INSERT INTO {self._changes} (symbol, old_date, new_date, old_time, "  # noqa: S608
            "new_time, kind, source, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )
        self._closed = False

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: PostgresSettings, table: str) -> AsyncIterator[EarningsStore]:
        try:
            pool = await asyncpg.create_pool(
                settings.dsn.reveal(),
                min_size=1,
                max_size=2,
                command_timeout=settings.command_timeout_s,
                server_settings={"application_name": "ingestion-agent:earnings"},
            )
        except Exception as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {settings.dsn.redacted()}: "
                f"{type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
        store = cls(pool, table)
        try:
            await store.migrate()
            yield store
        finally:
            await store.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.close()

    @property
    def table(self) -> str:
        return self.names["table"]

    async def migrate(self) -> MigrationOutcome:
        try:
            async with self._pool.acquire() as conn:
                return await migrate_earnings(conn, self.table)
        except StoreError:
            raise
        except Exception as exc:
            raise _translate(exc, f"migration of {self.table}") from exc

    async def upsert(
        self, events: Sequence[EarningsEvent], start: dt.date, end: dt.date, now: dt.datetime
    ) -> UpsertResult:
        """Store ``events`` fetched for ``[start, end]`` (see the module docstring)."""
        symbols = sorted({e.symbol for e in events})
        lo, hi = start - dt.timedelta(days=MATCH_DAYS), end + dt.timedelta(days=MATCH_DAYS)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))", _ADVISORY_NS, self.table
                )
                rows = await conn.fetch(self._sql_select, symbols, lo, hi)
                plan = plan_upsert([_event(r) for r in rows], events)
                await self._execute(conn, plan, now)
        except Exception as exc:
            raise _translate(exc, f"upsert into {self.table}") from exc
        self._log_changes(plan)
        return UpsertResult(
            inserted=len(plan.inserts),
            updated=len(plan.updates),
            unchanged=plan.unchanged,
            moves=plan.moves,
            time_changes=plan.time_changes,
        )

    async def _execute(self, conn: Any, plan: UpsertPlan, now: dt.datetime) -> None:
        if plan.inserts:
            await conn.executemany(self._sql_insert, [(*_row_values(e), now) for e in plan.inserts])
        if plan.updates:
            await conn.executemany(self._sql_update, [(*_row_values(e), now) for e in plan.updates])
        if plan.moves:
            await conn.executemany(
                self._sql_move,
                [
                    (m.old.symbol, m.old.event_date, *_row_values(m.new)[1:], now)
                    for m in plan.moves
                ],
            )
        changes = [(m, "rescheduled") for m in plan.moves]
        changes += [(m, "time_changed") for m in plan.time_changes]
        if changes:
            await conn.executemany(
                self._sql_change,
                [
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
            )

    @staticmethod
    def _log_changes(plan: UpsertPlan) -> None:
        for m in plan.moves:
            log.warning(
                "earnings_rescheduled",
                extra={
                    "symbol": m.new.symbol,
                    "old_date": m.old.event_date.isoformat(),
                    "new_date": m.new.event_date.isoformat(),
                    "old_time": m.old.event_time.isoformat(),
                    "new_time": m.new.event_time.isoformat(),
                    "source": m.new.source,
                },
            )
        for m in plan.time_changes:
            log.info(
                "earnings_time_changed",
                extra={
                    "symbol": m.new.symbol,
                    "event_date": m.new.event_date.isoformat(),
                    "old_time": m.old.event_time.isoformat(),
                    "new_time": m.new.event_time.isoformat(),
                },
            )

    async def unannounced(self, keys: Iterable[Key], column: AnnounceColumn) -> set[Key]:
        """The ``keys`` whose ``column`` announcement has not been made yet."""
        syms, days = _unzip(keys)
        sql = (
            f"SELECT t.symbol, t.event_date FROM {self._t} t "  # noqa: S608
            "JOIN unnest($1::text[], $2::date[]) AS k(symbol, event_date) "
            f"USING (symbol, event_date) WHERE t.{column} IS NULL"
        )
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(sql, syms, days)
        except Exception as exc:
            raise _translate(exc, f"reading announcements of {self.table}") from exc
        return {(r["symbol"], r["event_date"]) for r in rows}

    async def mark_announced(
        self, keys: Iterable[Key], column: AnnounceColumn, at: dt.datetime
    ) -> None:
        syms, days = _unzip(keys)
        if not syms:
            return
        sql = (
            f"UPDATE {self._t} t SET {column} = $3 "  # noqa: S608
            "FROM unnest($1::text[], $2::date[]) AS k(symbol, event_date) "
            f"WHERE t.symbol = k.symbol AND t.event_date = k.event_date AND t.{column} IS NULL"
        )
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(sql, syms, days, at)
        except Exception as exc:
            raise _translate(exc, f"recording announcements in {self.table}") from exc

    async def covered(self, day: dt.date) -> dt.datetime | None:
        """The newest slot a completed sync of ``day`` accounts for."""
        sql = (
            f"SELECT max(covers) FROM {self._syncs} "  # noqa: S608
            "WHERE sync_date = $1 AND status = 'complete'"
        )
        try:
            async with self._pool.acquire() as conn:
                value: dt.datetime | None = await conn.fetchval(sql, day)
        except Exception as exc:
            raise _translate(exc, f"reading {self.names['syncs_table']}") from exc
        return value

    async def record_run(self, run: SyncRun) -> None:
        sql = (
            f"INSERT INTO {self._syncs} (sync_date, trigger, covers, started_at, "  # noqa: S608
            "finished_at, status, source, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)"
        )
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(
                    sql,
                    run.sync_date,
                    run.trigger,
                    run.covers,
                    run.started_at,
                    run.finished_at,
                    run.status,
                    run.source,
                    msgspec.json.encode(run.summary).decode(),
                )
        except Exception as exc:
            raise _translate(exc, f"recording a run in {self.names['syncs_table']}") from exc

    async def events(self, start: dt.date, end: dt.date) -> list[EarningsEvent]:
        """Stored events with dates in ``[start, end]``, by (date, symbol)."""
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM {self._t} "  # noqa: S608
            "WHERE event_date BETWEEN $1 AND $2 ORDER BY event_date, symbol"
        )
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(sql, start, end)
        except Exception as exc:
            raise _translate(exc, f"reading {self.table}") from exc
        return [_event(r) for r in rows]


def _unzip(keys: Iterable[Key]) -> tuple[list[str], list[dt.date]]:
    pairs = sorted(set(keys))
    return [s for s, _ in pairs], [d for _, d in pairs]
