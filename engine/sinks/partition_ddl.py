"""Partition DDL of a native quote table: pg_partman, or the engine's own CREATE/DROP.

Partitions of a native table are managed by pg_partman when the ``pg_partman`` extension is
installed in the database when the table is created (``CREATE SCHEMA partman; CREATE EXTENSION
pg_partman SCHEMA partman``; Debian package ``postgresql-15-partman``): the table is registered
with ``create_parent`` and :func:`configure_partman`, and the engine only calls pg_partman's
``run_maintenance`` (so no ``pg_partman_bgw`` is required). Otherwise the engine manages them:
:func:`maintain_partitions` executes the plan of :func:`engine.sinks.partitions.plan_partitions`
(native mode): one short transaction per CREATE/DROP, under the migrations' advisory lock, with a
``lock_timeout`` so that a DROP waiting behind a long query fails and is retried at the next
maintenance instead of blocking the writer's inserts queued behind it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any, Final, Literal

from engine.errors import StoreError
from engine.sinks.partitions import (
    PartitionPlan,
    create_partition_sql,
    drop_partition_sql,
    parse_partition_day,
    plan_partitions,
    quote_ident,
)

logger = logging.getLogger(__name__)

Manager = Literal["engine", "pg_partman"]
ADVISORY_NS: Final = 0x1A6E57
"""First key of the two-int advisory lock that serialises migrations and partition DDL of a
table ("ingestion migrate")."""


# -- pg_partman (native mode, when the extension is installed in the database) --------------


async def partman_schema(conn: Any) -> str | None:
    """The schema pg_partman is installed in, or None."""
    schema: str | None = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_partman'"
    )
    return schema


async def qualified_name(conn: Any, table: str) -> str:
    """``schema.table`` as pg_partman records it in ``part_config.parent_table``."""
    name: str | None = await conn.fetchval(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
        quote_ident(table),
    )
    if name is None:
        raise StoreError(f"table {table} does not exist")
    return name


async def partition_manager(conn: Any, table: str) -> tuple[Manager, str | None]:
    """Who manages the partitions of native ``table``: ``pg_partman`` if it is registered
    there (with pg_partman's schema), else ``engine``."""
    schema = await partman_schema(conn)
    if schema is None:
        return "engine", None
    registered = await conn.fetchval(
        f"SELECT 1 FROM {quote_ident(schema)}.part_config WHERE parent_table = $1",  # noqa: S608
        await qualified_name(conn, table),
    )
    return ("pg_partman", schema) if registered else ("engine", None)


async def register_with_partman(
    conn: Any, table: str, schema: str, *, retention_days: int, ahead_days: int
) -> None:
    """``create_parent`` (daily, native), then the settings of :func:`configure_partman`."""
    await conn.execute(
        f"SELECT {quote_ident(schema)}.create_parent(p_parent_table := $1, "
        "p_control := 'market_time', p_type := 'native', p_interval := 'daily', "
        "p_premake := $2, p_jobmon := false)",
        await qualified_name(conn, table),
        ahead_days + 1,
    )
    await configure_partman(
        conn, table, schema, retention_days=retention_days, ahead_days=ahead_days
    )
    logger.info("partman_registered", extra={"table": table, "schema": schema})


async def configure_partman(
    conn: Any, table: str, schema: str, *, retention_days: int, ahead_days: int
) -> None:
    """Retention ``retention_days`` with expired partitions *dropped*: pg_partman's default
    ``retention_keep_table = true`` only detaches them, which would keep every day forever.
    ``premake`` covers the days the writer accepts (``ahead_days + 1``); rows outside go to the
    default partition pg_partman creates, which the writer avoids by not storing expired rows.
    ``infinite_time_partitions`` keeps premaking on days without data (weekends)."""
    await conn.execute(
        f"UPDATE {quote_ident(schema)}.part_config SET retention = $2, "  # noqa: S608
        "retention_keep_table = false, retention_keep_index = false, "
        "infinite_time_partitions = true, premake = $3 WHERE parent_table = $1",
        await qualified_name(conn, table),
        f"{retention_days} days",
        ahead_days + 1,
    )


async def run_partman_maintenance(conn: Any, table: str, schema: str) -> None:
    """pg_partman's maintenance of this table now (its clock: creates ahead, drops expired)."""
    await conn.execute(
        f"SELECT {quote_ident(schema)}.run_maintenance(p_parent_table := $1, p_jobmon := false)",
        await qualified_name(conn, table),
    )


# -- partition maintenance by the engine (native mode without pg_partman) ------------------


async def list_partition_days(conn: Any, table: str) -> set[dt.date]:
    """Days of the engine-named partitions that exist for ``table``."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass($1)",
        quote_ident(table),
    )
    days = {parse_partition_day(table, r["relname"]) for r in rows}
    return {d for d in days if d is not None}


async def _ddl(conn: Any, table: str, sql: str) -> None:
    """One DDL statement in its own transaction, serialised with migrations of ``table``, and
    giving up after 5 s rather than queueing inserts behind its lock request."""
    async with conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '5s'")
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", ADVISORY_NS, table)
        await conn.execute(sql)


async def create_partitions(conn: Any, table: str, days: Iterable[dt.date]) -> None:
    for day in sorted(days):
        await _ddl(conn, table, create_partition_sql(table, day))


async def maintain_partitions(
    conn: Any, table: str, today: dt.date, *, retention_days: int, ahead_days: int
) -> PartitionPlan:
    """Create the partitions ahead and drop expired ones for ``today``; returns what it did."""
    existing = await list_partition_days(conn, table)
    plan = plan_partitions(today, existing, retention_days=retention_days, ahead_days=ahead_days)
    await create_partitions(conn, table, plan.create)
    for day in plan.drop:
        await _ddl(conn, table, drop_partition_sql(table, day))
    if not plan.empty:
        logger.info(
            "partitions_maintained",
            extra={
                "table": table,
                "today": today.isoformat(),
                "created_days": [d.isoformat() for d in plan.create],
                "dropped_days": [d.isoformat() for d in plan.drop],
            },
        )
    return plan
