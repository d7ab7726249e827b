"""Logic of the ``ingestion-agent db`` subcommands: ``migrate``, ``stats`` and ``maintain``.

Each command is ``async def X_command(settings, out, err=None, ...) -> int`` (an exit status:
0 success, 1 database error or missing table), writes its report to ``out`` and its errors to
``err`` (default: stderr). The CLI module only parses arguments and runs one of them.

* ``migrate`` - create or upgrade the quote table (idempotent), print mode and versions.
* ``stats`` - rows per UTC day with oldest/newest quote (one scan of the table: exact, so it
  takes seconds on a week of data), the partitions or Timescale chunks, and the table's size.
  ``fmt="json"`` prints the same as one JSON document.
* ``maintain`` - run partition maintenance once (native mode), e.g. from cron when the engine
  is not running; ``today`` can be forced for a back-fill or a test.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import msgspec

from engine.config import PostgresSettings, redact_url
from engine.deps import postgres as pg
from engine.errors import StoreError
from engine.sinks import partitions as parts
from engine.sinks.migrations import Mode, migrate, recorded_state
from engine.sinks.partition_ddl import Manager, partition_manager
from engine.sinks.store.maintenance import maintain_once


@dataclass(frozen=True, slots=True)
class DayStats:
    day: dt.date
    rows: int
    oldest: dt.datetime
    newest: dt.datetime


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    name: str
    range_start: dt.datetime | None
    range_end: dt.datetime | None
    bytes: int | None
    compressed: bool | None = None  # Timescale chunks only


@dataclass(frozen=True, slots=True)
class TableStats:
    table: str
    mode: Mode | None
    manager: Manager | None  # native mode: who manages the partitions
    schema_version: int
    rows: int
    oldest: dt.datetime | None
    newest: dt.datetime | None
    total_bytes: int
    days: list[DayStats] = field(default_factory=list)
    partitions: list[PartitionInfo] = field(default_factory=list)


async def migrate_command(
    settings: PostgresSettings,
    out: TextIO,
    err: TextIO | None = None,
    *,
    allow_timescale: bool = True,
    earnings_table: str | None = None,
) -> int:
    """Apply pending migrations to ``settings.table`` (and to ``earnings_table``, if given)."""
    from engine.earnings.migration import migrate_earnings

    async def work(conn: Any) -> int:
        report: list[str] = []  # printed once everything succeeded
        if earnings_table is not None:
            e = await migrate_earnings(conn, earnings_table)
            done = (
                f"migrated from version {e.from_version} to {e.to_version}"
                if e.applied
                else f"already at version {e.to_version}; nothing to do"
            )
            report.append(f"{e.table}: {done}")
        res = await migrate(
            conn,
            settings.table,
            retention_days=settings.retention_days,
            ahead_days=settings.partitions_ahead_days,
            allow_timescale=allow_timescale,
        )
        if res.mode == "native":
            await maintain_once(conn, settings, dt.datetime.now(dt.UTC).date())
        if res.applied:
            applied = ", ".join(str(v) for v in res.applied)
            report.append(
                f"{res.table}: migrated from version {res.from_version} to {res.to_version} "
                f"({res.mode}); applied {applied}"
            )
        else:
            report.append(
                f"{res.table}: already at version {res.to_version} ({res.mode}); nothing to do"
            )
        for line in report:
            print(line, file=out)
        return 0

    return await _run("migrate", settings, err, work)


async def maintain_command(
    settings: PostgresSettings,
    out: TextIO,
    err: TextIO | None = None,
    *,
    today: dt.date | None = None,
) -> int:
    """Create partitions ahead / drop expired ones once (native mode only)."""
    day = today or dt.datetime.now(dt.UTC).date()

    async def work(conn: Any) -> int:
        _, mode = await recorded_state(conn, settings.table)
        if mode != "native":
            what = "is not migrated" if mode is None else "is a TimescaleDB hypertable"
            print(f"{settings.table} {what}: no partition maintenance to do", file=out)
            return 0 if mode else 1
        plan = await maintain_once(conn, settings, day)
        if plan is None:
            print(f"{settings.table}: pg_partman maintenance ran (on the server's clock)", file=out)
            return 0
        created = ", ".join(d.isoformat() for d in plan.create) or "none"
        dropped = ", ".join(d.isoformat() for d in plan.drop) or "none"
        print(f"{settings.table} ({day}): created {created}; dropped {dropped}", file=out)
        return 0

    return await _run("maintain", settings, err, work)


async def stats_command(
    settings: PostgresSettings,
    out: TextIO,
    err: TextIO | None = None,
    *,
    fmt: Literal["text", "json"] = "text",
) -> int:
    """Print rows per day, partitions/chunks, oldest/newest quote and size of the table."""

    async def work(conn: Any) -> int:
        st = await collect_stats(conn, settings.table)
        if st is None:
            print(
                f"table {settings.table} does not exist; run `ingestion-agent db migrate`",
                file=err or sys.stderr,
            )
            return 1
        if fmt == "json":
            out.write(msgspec.json.encode(st).decode() + "\n")
        else:
            out.write(format_stats(st))
        return 0

    return await _run("stats", settings, err, work)


async def _run(
    name: str, settings: PostgresSettings, err: TextIO | None, work: Callable[[Any], Awaitable[int]]
) -> int:
    """Connect, ``work(conn)`` (its exit status), close. A failure is reported on ``err``
    (default: stderr), never as a traceback, and is exit status 1."""
    try:
        async with connection(settings, purpose=f"db-{name}") as conn:
            return await work(conn)
    except Exception as exc:
        print(f"db {name} failed: {_describe(exc)}", file=err or sys.stderr)
        return 1


@asynccontextmanager
async def connection(settings: PostgresSettings, *, purpose: str) -> AsyncIterator[Any]:
    """One connection for a command, closed on exit; :class:`StoreError` names the redacted DSN."""
    conn = await pg.connect(settings, purpose=purpose)
    try:
        yield conn
    finally:
        await conn.close()


async def collect_stats(conn: Any, table: str) -> TableStats | None:
    """Gather :class:`TableStats`; None if the table does not exist."""
    parts.check_table_name(table)
    ident = parts.quote_ident(table)
    with pg.translate(f"cannot read statistics of {table}"):
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", ident):
            return None
        version, mode = await recorded_state(conn, table)
        manager = (await partition_manager(conn, table))[0] if mode == "native" else None
        rows = await conn.fetch(
            "SELECT (market_time AT TIME ZONE 'UTC')::date AS day, count(*) AS n, "  # noqa: S608
            f"min(market_time) AS oldest, max(market_time) AS newest FROM {ident} "
            "GROUP BY 1 ORDER BY 1"
        )
        days = [DayStats(r["day"], r["n"], r["oldest"], r["newest"]) for r in rows]
        if mode == "timescale":
            partitions = await _chunks(conn, table)
            total = int(await conn.fetchval("SELECT hypertable_size(to_regclass($1))", ident) or 0)
        else:
            partitions = await _partitions(conn, ident)
            total = sum(p.bytes or 0 for p in partitions)
    return TableStats(
        table=table,
        mode=mode,
        manager=manager,
        schema_version=version,
        rows=sum(d.rows for d in days),
        oldest=days[0].oldest if days else None,
        newest=max(d.newest for d in days) if days else None,
        total_bytes=total,
        days=days,
        partitions=partitions,
    )


async def _partitions(conn: Any, ident: str) -> list[PartitionInfo]:
    rows = await conn.fetch(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound, "
        "pg_total_relation_size(c.oid) AS bytes "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass($1) ORDER BY c.relname",
        ident,
    )
    out: list[PartitionInfo] = []
    for r in rows:
        start, end = _parse_bound(r["bound"] or "")
        out.append(PartitionInfo(r["relname"], start, end, int(r["bytes"])))
    return out


async def _chunks(conn: Any, table: str) -> list[PartitionInfo]:
    rows = await conn.fetch(
        "SELECT chunk_schema || '.' || chunk_name AS name, range_start, range_end, is_compressed "
        "FROM timescaledb_information.chunks WHERE hypertable_name = $1 ORDER BY range_start",
        table,
    )
    return [
        PartitionInfo(r["name"], r["range_start"], r["range_end"], None, bool(r["is_compressed"]))
        for r in rows
    ]


def _describe(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
    return redact_url(text)


def _parse_bound(bound: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``FOR VALUES FROM ('2026-11-26 00:00:00+00') TO ('2026-11-27 00:00:00+00')``."""
    quoted = bound.split("'")
    if len(quoted) < 5:
        return None, None
    try:
        return _ts(quoted[1]), _ts(quoted[3])
    except ValueError:
        return None, None


def _ts(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def _when(t: dt.datetime | None) -> str:
    return "-" if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_stats(st: TableStats) -> str:
    """The human-readable report of ``db stats``."""
    kind = {
        "native": f"native daily partitions managed by {st.manager}",
        "timescale": "TimescaleDB hypertable",
    }.get(st.mode or "", "unmanaged (no schema version recorded)")
    lines = [
        f"table         {st.table} ({kind}, schema version {st.schema_version})",
        f"rows          {st.rows:,}",
        f"oldest quote  {_when(st.oldest)}",
        f"newest quote  {_when(st.newest)}",
        f"table size    {_size(st.total_bytes)}",
        "",
        f"{'day':<12}{'rows':>14}  {'oldest':<20}  {'newest':<20}",
    ]
    lines += [
        f"{d.day.isoformat():<12}{d.rows:>14,}  {_when(d.oldest):<20}  {_when(d.newest):<20}"
        for d in st.days
    ] or ["(no rows)"]
    label = "chunks" if st.mode == "timescale" else "partitions"
    lines += ["", f"{label} ({len(st.partitions)})"]
    for p in st.partitions:
        flag = "" if p.compressed is None else ("  compressed" if p.compressed else "")
        lines.append(
            f"{p.name:<40}  {_when(p.range_start)} .. {_when(p.range_end)}  "
            f"{_size(p.bytes):>10}{flag}"
        )
    return "\n".join(lines) + "\n"
