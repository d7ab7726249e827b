"""Versioned, idempotent schema migrations for the quote table, and its partition DDL.

The DDL lives in ``schemas/`` as plain SQL files with psql-style variables (``:"table"`` for a
quoted identifier, ``:'retention'`` for a quoted literal), so an operator can also apply them by
hand with ``psql -v table=... -f``:

* ``pg_bootstrap.sql`` - the ``ingestion_schema_migrations`` bookkeeping table;
* ``pg_vNNN_<what>.native.sql`` / ``pg_vNNN_<what>.timescale.sql`` - migration NNN for each
  storage mode (a plain ``pg_vNNN_<what>.sql`` applies to both).

:func:`migrate` runs in one transaction under a per-table advisory lock: it bootstraps the
bookkeeping table, reads the table's recorded version and mode, applies every newer migration in
order and records each one. Re-running it is a no-op; a database recorded at a *newer* version
than this engine knows is refused (an old engine must not write into a newer schema).

The storage mode is chosen once, when the table is first created: ``timescale`` if the
``timescaledb`` extension is installed in the database or can be created (it must be in
``shared_preload_libraries``), else ``native`` daily partitions. It is recorded and kept
afterwards, even if TimescaleDB appears later (converting needs a deliberate data migration).

Partitions of a native table are managed by pg_partman when the ``pg_partman`` extension is
installed in the database when the table is created (``CREATE SCHEMA partman; CREATE EXTENSION
pg_partman SCHEMA partman``; Debian package ``postgresql-15-partman``): the table is registered
with ``create_parent`` and :func:`configure_partman`, and the engine only calls pg_partman's
``run_maintenance`` (so no ``pg_partman_bgw`` is required). Otherwise the engine manages them:
:func:`maintain_partitions` executes the plan of :func:`engine.sinks.partitions.plan_partitions`
(native mode): one short transaction per CREATE/DROP, under the same advisory lock, with a
``lock_timeout`` so that a DROP waiting behind a long query fails and is retried at the next
maintenance instead of blocking the writer's inserts queued behind it.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from engine.errors import StoreConfigError, StoreError
from engine.sinks.partitions import (
    PartitionPlan,
    check_table_name,
    create_partition_sql,
    drop_partition_sql,
    parse_partition_day,
    plan_partitions,
    quote_ident,
    quote_literal,
)

logger = logging.getLogger(__name__)

Mode = Literal["native", "timescale"]
Manager = Literal["engine", "pg_partman"]
MIGRATIONS_TABLE: Final = "ingestion_schema_migrations"


def _schema_dir() -> Path:
    """The SQL/JSON schema files: the package ``engine.schemas``, which pyproject.toml maps onto
    the repo's top-level ``schemas/`` (so wheels, Docker images and editable installs ship it)."""
    try:
        root = importlib.resources.files("engine.schemas")
    except ModuleNotFoundError:  # a source checkout on sys.path, never pip-installed
        root = Path(__file__).resolve().parent.parent / "schemas"
    if not isinstance(root, Path) or not (root / "pg_bootstrap.sql").is_file():
        raise ImportError(
            f"the schema files (package engine.schemas) are missing at {root}: reinstall "
            "ingestion-agent from a wheel or with `pip install .` (an unpacked install)"
        )
    return root


SCHEMA_DIR: Final = _schema_dir()
COMPRESS_AFTER: Final = "2 days"
_ADVISORY_NS: Final = 0x1A6E57  # first key of the two-int advisory lock: "ingestion migrate"
_VAR_RE: Final = re.compile(r":([\"'])([A-Za-z_][A-Za-z0-9_]*)\1")
_FILE_RE: Final = re.compile(r"^pg_v(\d{3})_([a-z0-9_]+?)(?:\.(native|timescale))?\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its SQL for each mode (templates, not yet rendered)."""

    version: int
    description: str
    native_sql: str
    timescale_sql: str

    def sql(self, mode: Mode) -> str:
        return self.native_sql if mode == "native" else self.timescale_sql


@dataclass(frozen=True, slots=True)
class MigrationResult:
    table: str
    mode: Mode
    from_version: int  # 0 = the table had no recorded version
    to_version: int
    applied: tuple[int, ...]


def render(sql: str, variables: Mapping[str, str]) -> str:
    """Substitute psql-style ``:"name"`` (identifier) and ``:'name'`` (literal) variables."""

    def sub(m: re.Match[str]) -> str:
        quote, name = m.group(1), m.group(2)
        if name not in variables:
            raise StoreError(f"schema file uses undefined variable {name!r}")
        value = variables[name]
        return quote_ident(value) if quote == '"' else quote_literal(value)

    return _VAR_RE.sub(sub, sql)


def load_migrations(schema_dir: Path = SCHEMA_DIR) -> list[Migration]:
    """Read ``pg_vNNN_*.sql`` files; every version must exist for both modes, with no gaps."""
    found: dict[int, dict[str, str]] = {}
    names: dict[int, str] = {}
    for path in sorted(schema_dir.glob("pg_v*.sql")):
        m = _FILE_RE.match(path.name)
        if not m:
            raise StoreError(f"unexpected schema file name {path.name!r} in {schema_dir}")
        version, desc, mode = int(m.group(1)), m.group(2), m.group(3)
        text = path.read_text(encoding="utf-8")
        slot = found.setdefault(version, {})
        for md in (mode,) if mode else ("native", "timescale"):
            if md in slot:
                raise StoreError(f"schema version {version} defined twice for mode {md}")
            slot[md] = text
        names[version] = desc
    out: list[Migration] = []
    for i, version in enumerate(sorted(found), start=1):
        slot = found[version]
        if version != i or set(slot) != {"native", "timescale"}:
            raise StoreError(
                f"schema files in {schema_dir} must define versions 1..N for both modes; "
                f"version {version} has {sorted(slot)}"
            )
        out.append(Migration(version, names[version], slot["native"], slot["timescale"]))
    return out


def template_variables(table: str, retention_days: int) -> dict[str, str]:
    """The values substituted into the schema files for ``table``."""
    return {
        "table": table,
        "time_index": f"{table}_time_brin",
        "retention": f"{retention_days} days",
        "compress_after": COMPRESS_AFTER,
    }


async def detect_mode(conn: Any, *, allow_timescale: bool = True) -> Mode:
    """``timescale`` if the extension is (or can be) installed in this database, else ``native``."""
    if not allow_timescale:
        return "native"
    if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
        return "timescale"
    if not await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
        return "native"
    try:
        async with conn.transaction():  # a savepoint: a failure leaves the outer one usable
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except Exception as exc:
        logger.warning(
            "timescaledb is available but could not be created; using native partitions",
            extra={"event": "timescale_unavailable", "error": str(exc)[:200]},
        )
        return "native"
    return "timescale"


async def recorded_state(conn: Any, table: str) -> tuple[int, Mode | None]:
    """(version, mode) recorded for ``table``; (0, None) if none or no bookkeeping table."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", MIGRATIONS_TABLE)
    if not exists:
        return 0, None
    row = await conn.fetchrow(
        f"SELECT version, mode FROM {MIGRATIONS_TABLE} WHERE table_name = $1 "  # noqa: S608
        "ORDER BY version DESC LIMIT 1",
        table,
    )
    if row is None:
        return 0, None
    mode: Mode = "timescale" if row["mode"] == "timescale" else "native"
    return int(row["version"]), mode


async def migrate(
    conn: Any,
    table: str,
    *,
    retention_days: int,
    ahead_days: int = 3,
    allow_timescale: bool = True,
    allow_partman: bool = True,
    schema_dir: Path = SCHEMA_DIR,
) -> MigrationResult:
    """Bring ``table`` to the newest schema version. Idempotent; safe under concurrency.

    A native table created here is registered with pg_partman when that extension is installed
    in the database (``allow_partman``); otherwise the engine manages its partitions.
    """
    check_table_name(table)
    migrations = load_migrations(schema_dir)
    latest = migrations[-1].version if migrations else 0
    bootstrap = (schema_dir / "pg_bootstrap.sql").read_text(encoding="utf-8")
    variables = template_variables(table, retention_days)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _ADVISORY_NS, table)
        await conn.execute(bootstrap)
        current, mode = await recorded_state(conn, table)
        if current and not await conn.fetchval("SELECT to_regclass($1)", quote_ident(table)):
            logger.warning(
                "table recorded as migrated but missing; creating it again",
                extra={"event": "schema_table_missing", "table": table, "version": current},
            )
            await conn.execute(
                f"DELETE FROM {MIGRATIONS_TABLE} WHERE table_name = $1",  # noqa: S608
                table,
            )
            current, mode = 0, None
        if current > latest:
            raise _newer_schema_error(table, current, latest)
        if mode is None:
            mode = await detect_mode(conn, allow_timescale=allow_timescale)
        applied: list[int] = []
        for mig in migrations[current:]:
            await conn.execute(render(mig.sql(mode), variables))
            await conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} "  # noqa: S608
                "(table_name, version, description, mode) VALUES ($1, $2, $3, $4)",
                table,
                mig.version,
                mig.description,
                mode,
            )
            applied.append(mig.version)
        if current == 0 and mode == "native" and allow_partman:
            schema = await partman_schema(conn)
            if schema is not None:
                await register_with_partman(
                    conn, table, schema, retention_days=retention_days, ahead_days=ahead_days
                )
    if applied:
        logger.info(
            "schema migrated",
            extra={
                "event": "schema_migrated",
                "table": table,
                "mode": mode,
                "from_version": current,
                "to_version": latest,
            },
        )
    return MigrationResult(table, mode, current, latest, tuple(applied))


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
    logger.info(
        "table registered with pg_partman",
        extra={"event": "partman_registered", "table": table, "schema": schema},
    )


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
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _ADVISORY_NS, table)
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
            "partitions maintained",
            extra={
                "event": "partitions_maintained",
                "table": table,
                "today": today.isoformat(),
                "created_days": [d.isoformat() for d in plan.create],
                "dropped_days": [d.isoformat() for d in plan.drop],
            },
        )
    return plan


def _newer_schema_error(table: str, current: int, latest: int) -> StoreConfigError:
    return StoreConfigError(
        f"table {table} is at schema version {current}, newer than this engine knows "
        f"({latest}); upgrade ingestion-agent before writing to it"
    )


def ident(table: str) -> str:
    """The quoted identifier of a checked table name."""
    return quote_ident(check_table_name(table))
