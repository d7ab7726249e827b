"""Versioned, idempotent schema migrations for the quote table.

The DDL lives in ``schemas/`` as plain SQL files with psql-style variables (``:"table"`` for a
quoted identifier, ``:'retention'`` for a quoted literal), so an operator can also apply them by
hand with ``psql -v table=... -f``:

* ``pg_bootstrap.sql`` - the ``ingestion_schema_migrations`` bookkeeping table;
* ``pg_vNNN_<what>.native.sql`` / ``pg_vNNN_<what>.timescale.sql`` - migration NNN for each
  storage mode (a plain ``pg_vNNN_<what>.sql`` applies to both).

:func:`migrate` runs in one transaction under a per-table advisory lock: it bootstraps the
bookkeeping table (:func:`bootstrap`, under a database-wide lock of its own), reads the table's
recorded version and mode, applies every newer migration in order and records each one.
Re-running it is a no-op; a database recorded at a *newer* version than this engine knows is
refused (an old engine must not write into a newer schema).

The storage mode is chosen once, when the table is first created: ``timescale`` if the
``timescaledb`` extension is installed in the database or can be created (it must be in
``shared_preload_libraries``), else ``native`` daily partitions. It is recorded and kept
afterwards, even if TimescaleDB appears later (converting needs a deliberate data migration).

Partition DDL (pg_partman registration, the engine's own CREATE/DROP) is in
:mod:`engine.sinks.partition_ddl`; :func:`migrate` registers a new native table with pg_partman
when that extension is installed.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from engine.errors import StoreConfigError, StoreError
from engine.sinks.partition_ddl import ADVISORY_NS, partman_schema, register_with_partman
from engine.sinks.partitions import check_table_name, quote_ident, quote_literal
from engine.stats import StoreMode

logger = logging.getLogger(__name__)

Mode = StoreMode
MIGRATIONS_TABLE: Final = "ingestion_schema_migrations"
BOOTSTRAP_LOCK: Final = 0x1A6E5700
"""One-key advisory lock (a key space apart from the two-int per-table locks) that serialises
the creation of the bookkeeping table, which every table's migrations share."""


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
            "timescale_unavailable",
            extra={"mode": "native", "error_kind": type(exc).__name__, "error": str(exc)[:200]},
        )
        return "native"
    return "timescale"


async def bootstrap(conn: Any, schema_dir: Path = SCHEMA_DIR) -> None:
    """Create the bookkeeping table if it is missing, in the caller's migration transaction.

    ``CREATE TABLE IF NOT EXISTS`` does not guard against a concurrent one: the first start-ups
    of two *different* tables on a fresh database (the quote table and the earnings table, two
    engines) would both create it and all but one fail on PostgreSQL's ``pg_type`` unique index.
    So it runs under :data:`BOOTSTRAP_LOCK`, held until the caller commits; the caller holds its
    per-table lock already and takes no lock after this one, so no lock cycle can form.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1)", BOOTSTRAP_LOCK)
    await conn.execute((schema_dir / "pg_bootstrap.sql").read_text(encoding="utf-8"))


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
    variables = template_variables(table, retention_days)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", ADVISORY_NS, table)
        await bootstrap(conn, schema_dir)
        current, mode = await recorded_state(conn, table)
        if current and not await conn.fetchval("SELECT to_regclass($1)", quote_ident(table)):
            logger.warning(  # the migrations are applied again from the first one
                "schema_table_missing", extra={"table": table, "version": current}
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
            "schema_migrated",
            extra={
                "table": table,
                "mode": mode,
                "from_version": current,
                "to_version": latest,
            },
        )
    return MigrationResult(table, mode, current, latest, tuple(applied))


def _newer_schema_error(table: str, current: int, latest: int) -> StoreConfigError:
    return StoreConfigError(
        f"table {table} is at schema version {current}, newer than this engine knows "
        f"({latest}); upgrade ingestion-agent before writing to it"
    )


def ident(table: str) -> str:
    """The quoted identifier of a checked table name."""
    return quote_ident(check_table_name(table))
