"""The earnings tables' schema: versioned migrations, like ``market_data``'s.

Schema (``schemas/earnings/pg_v001_earnings_calendar.sql``): ``<table>`` keyed by (symbol,
event_date), ``<table>_changes`` (every reschedule and start-time change) and ``<table>_syncs``
(one row per sync run, which is how the scheduler knows whether today's sync has run). The
migration is versioned like ``market_data``'s - same ``schemas/`` conventions, same
``ingestion_schema_migrations`` bookkeeping, its own line per table name - but lives in its own
directory so the two tables' version sequences stay independent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

import msgspec

from engine.errors import StoreConfigError
from engine.sinks.migrations import (
    MIGRATIONS_TABLE,
    SCHEMA_DIR,
    bootstrap,
    load_migrations,
    recorded_state,
    render,
)
from engine.sinks.partitions import check_table_name, quote_ident

log = logging.getLogger(__name__)

EARNINGS_SCHEMA_DIR: Final = SCHEMA_DIR / "earnings"
ADVISORY_NS: Final = 0x1A6E58  # "ingestion earnings" (migrations use 0x1A6E57)


async def lock_table(conn: Any, table: str) -> None:
    """Take the per-table advisory lock for the rest of the transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", ADVISORY_NS, table)


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
    async with conn.transaction():
        await lock_table(conn, table)
        await bootstrap(conn)
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
