"""QuoteStore, migrations and the db commands against real PostgreSQL 15.

Shared server: 127.0.0.1:5432, database ``test`` (override with TEST_POSTGRES_DSN); every test
uses its own table (dropped afterwards) and its own spill directory. Outage tests start their own
PostgreSQL (initdb + pg_ctl, as the ``postgres`` user when run as root) on a spare port, stop
and restart it.

The TimescaleDB variant of the schema cannot run here (no registry ships TimescaleDB); its SQL
is checked by PostgreSQL itself: the whole file goes through PostgreSQL's parser (a simple-query
string is parsed completely before its first statement runs, and that first statement is a
deliberate division by zero), and every statement except the ``timescaledb.*`` storage options is
executed in a rolled-back transaction against stub functions carrying TimescaleDB's signatures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from engine.commands.db import maintain_command, migrate_command, stats_command
from engine.config import PostgresSettings, Secret
from engine.earnings.migration import migrate_earnings
from engine.errors import StoreError
from engine.quote import Quote
from engine.sinks import partitions as parts
from engine.sinks.migrations import SCHEMA_DIR, load_migrations, migrate, render, template_variables
from engine.sinks.store import QuoteStore, spill_paths

pytestmark = pytest.mark.integration

DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PG_BIN = Path(os.environ.get("TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
NOW = int(time.time())


def make_quote(symbol: str, t: int, price: float = 100.0) -> Quote:
    return Quote(
        symbol=symbol,
        price=price,
        volume=1000,
        change_percent=0.5,
        market_time=t,
        market_state="REGULAR",
        currency="USD",
        exchange="NMS",
        source="test",
        ingest_time_ns=time.time_ns(),
        correlation_id=str(uuid.uuid4()),
    )


def cycle(n: int, symbols: int, *, base: int = NOW) -> list[Quote]:
    """One fetch cycle: ``symbols`` quotes, market time ``base + n``."""
    return [make_quote(f"S{i:05d}", base + n) for i in range(symbols)]


async def until(pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def counts(dsn: str, table: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, count(DISTINCT (symbol, market_time)) AS d FROM {table}"
        )
        return int(row["n"]), int(row["d"])
    finally:
        await conn.close()


async def drop_table(dsn: str, table: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {parts.quote_ident(table)} CASCADE")
        if await conn.fetchval("SELECT to_regclass('ingestion_schema_migrations')"):
            await conn.execute(
                "DELETE FROM ingestion_schema_migrations WHERE table_name = $1", table
            )
    finally:
        await conn.close()


@pytest.fixture
async def table() -> AsyncIterator[str]:
    name = f"t_store_{uuid.uuid4().hex[:12]}"
    yield name
    await drop_table(DSN, name)


def pg_settings(table: str, spill: Path, dsn: str = DSN, **kw: Any) -> PostgresSettings:
    base: dict[str, Any] = {
        "dsn": Secret(dsn),
        "table": table,
        "spill_dir": str(spill),
        "connect_attempts": 2,
        "connect_backoff_s": 0.05,
        "command_timeout_s": 5.0,
    }
    base.update(kw)
    return PostgresSettings(**base)


# -- a PostgreSQL of our own, to stop and start ----------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class OwnPostgres:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False

    def initdb(self) -> None:
        subprocess.run(
            as_postgres(
                [
                    *(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres"),
                    *("-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"),
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        subprocess.run(
            as_postgres(
                [
                    *(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log")),
                    *("-o", opts, "-w", "-t", "60", "start"),
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
            check=True,
            capture_output=True,
        )
        self.running = False


@pytest.fixture(scope="module")
def own_pg_server() -> Iterator[OwnPostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN}")
    base = Path(tempfile.mkdtemp(prefix="ia-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    pg = OwnPostgres(base)
    try:
        pg.initdb()
        pg.start()
        yield pg
    finally:
        if pg.running:
            pg.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def own_pg(own_pg_server: OwnPostgres) -> OwnPostgres:
    """The module's own server, running at the start of the test."""
    if not own_pg_server.running:
        own_pg_server.start()
    return own_pg_server


# -- migrations ----------------------------------------------------------------------------


@pytest.fixture
async def fresh_dsn() -> AsyncIterator[str]:
    """A new, empty database of its own (no bookkeeping table yet), dropped after."""
    db = f"ia_fresh_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(DSN)
    try:
        await admin.execute(f"CREATE DATABASE {db}")
    finally:
        await admin.close()
    yield DSN.rsplit("/", 1)[0] + "/" + db
    admin = await asyncpg.connect(DSN)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    finally:
        await admin.close()


class TestMigrations:
    async def test_from_empty_then_rerun_is_a_no_op(self, table: str) -> None:
        """An empty database gets v1 (native here); a second run applies nothing."""
        conn = await asyncpg.connect(DSN)
        try:
            first = await migrate(conn, table, retention_days=7)
            second = await migrate(conn, table, retention_days=7)
            rows = await conn.fetch(
                "SELECT version, mode FROM ingestion_schema_migrations WHERE table_name = $1",
                table,
            )
            kind = await conn.fetchval(
                "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", table
            )
        finally:
            await conn.close()
        assert (first.from_version, first.to_version, first.applied) == (0, 1, (1,))
        assert first.mode == "native"
        assert (second.from_version, second.applied) == (1, ())
        assert [(r["version"], r["mode"]) for r in rows] == [(1, "native")]
        assert kind == "p"  # a partitioned table

    async def test_concurrent_migrations_do_not_race(self, table: str) -> None:
        """Two engines starting at once: one applies v1, the other waits and finds it done."""
        c1, c2 = await asyncpg.connect(DSN), await asyncpg.connect(DSN)
        try:
            r1, r2 = await asyncio.gather(
                migrate(c1, table, retention_days=7), migrate(c2, table, retention_days=7)
            )
        finally:
            await c1.close()
            await c2.close()
        assert sorted([r1.applied, r2.applied]) == [(), (1,)]

    async def test_first_migrations_of_different_tables_do_not_race(self, fresh_dsn: str) -> None:
        """First start-ups of several tables at once on a fresh database (quote tables and an
        earnings table): all create the shared bookkeeping table's row of their own; none fails
        on creating that table (PostgreSQL's pg_type unique index, without the bootstrap lock)."""
        conns = [await asyncpg.connect(fresh_dsn) for _ in range(4)]
        try:
            results = await asyncio.gather(
                *(migrate(c, f"t_first_{i}", retention_days=7) for i, c in enumerate(conns[:3])),
                migrate_earnings(conns[3], "t_first_earnings"),
                return_exceptions=True,
            )
            recorded = await conns[0].fetch(
                "SELECT table_name, version FROM ingestion_schema_migrations ORDER BY 1"
            )
        finally:
            for c in conns:
                await c.close()
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == []
        assert [r.applied for r in results if not isinstance(r, BaseException)] == [(1,)] * 4
        assert [(r["table_name"], r["version"]) for r in recorded] == [
            ("t_first_0", 1),
            ("t_first_1", 1),
            ("t_first_2", 1),
            ("t_first_earnings", 1),
        ]

    async def test_newer_schema_is_refused(self, table: str) -> None:
        """A database migrated by a newer engine is not written by an older one."""
        conn = await asyncpg.connect(DSN)
        try:
            await migrate(conn, table, retention_days=7)
            await conn.execute(
                "INSERT INTO ingestion_schema_migrations (table_name, version, description, mode)"
                " VALUES ($1, 99, 'future', 'native')",
                table,
            )
            with pytest.raises(StoreError, match="newer than this engine") as exc_info:
                await migrate(conn, table, retention_days=7)
        finally:
            await conn.close()
        assert exc_info.value.retryable is False

    async def test_table_dropped_by_hand_is_recreated(self, table: str) -> None:
        """A recorded version whose table vanished is migrated again from scratch."""
        conn = await asyncpg.connect(DSN)
        try:
            await migrate(conn, table, retention_days=7)
            await conn.execute(f"DROP TABLE {table}")
            again = await migrate(conn, table, retention_days=7)
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
        finally:
            await conn.close()
        assert again.applied == (1,)
        assert exists

    async def test_timescale_sql_is_valid_postgresql(self, table: str) -> None:
        """The hypertable migration parses, and runs against stubs of TimescaleDB's API."""
        sql = render(load_migrations()[0].timescale_sql, template_variables(table, 7))
        conn = await asyncpg.connect(DSN)
        try:
            # 1. Grammar: PostgreSQL parses a whole simple-query string before executing its
            #    first statement; a syntax error anywhere would be reported instead of 22012.
            with pytest.raises(asyncpg.DivisionByZeroError):
                await conn.execute("SELECT 1/0;\n" + sql)
            # 2. Semantics, against stubs with TimescaleDB's parameter names, rolled back.
            tr = conn.transaction()
            await tr.start()
            try:
                await conn.execute(TIMESCALE_STUBS)
                await conn.execute("SET LOCAL search_path = ts_stub, public")
                for stmt in split_sql(sql):
                    if "timescaledb." in stmt:  # storage options only TimescaleDB knows
                        assert stmt.lstrip().upper().startswith("ALTER TABLE")
                        continue
                    await conn.execute(stmt)
                calls = [r["call"] for r in await conn.fetch("SELECT call FROM ts_stub.calls")]
                pk = await conn.fetchval(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = to_regclass($1) AND contype = 'p'",
                    table,
                )
            finally:
                await tr.rollback()
        finally:
            await conn.close()
        assert calls == [
            f"create_hypertable {table} market_time 1 day true",
            f"add_compression_policy {table} 2 days true",
            f"add_retention_policy {table} 7 days true",
        ]
        assert pk == "PRIMARY KEY (symbol, market_time)"

    def test_schema_files_define_both_modes(self) -> None:
        """Every version exists for native and timescale, numbered 1..N."""
        migrations = load_migrations(SCHEMA_DIR)
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
        assert all(m.native_sql and m.timescale_sql for m in migrations)

    def test_render_quotes_every_variable(self) -> None:
        """Identifiers and literals are quoted; an unknown variable is an error."""
        out = render("CREATE TABLE :\"t\" (x int); SELECT :'v';", {"t": 'a"b', "v": "it's"})
        assert out == "CREATE TABLE \"a\"\"b\" (x int); SELECT 'it''s';"
        with pytest.raises(StoreError):
            render('SELECT :"nope"', {})


TIMESCALE_STUBS = """
CREATE SCHEMA ts_stub;
CREATE TABLE ts_stub.calls (n serial, call text);
CREATE FUNCTION ts_stub.create_hypertable(
    relation regclass, time_column_name name, partitioning_column name DEFAULT NULL,
    number_partitions integer DEFAULT NULL, associated_schema_name name DEFAULT NULL,
    associated_table_prefix name DEFAULT NULL, chunk_time_interval interval DEFAULT NULL,
    create_default_indexes boolean DEFAULT true, if_not_exists boolean DEFAULT false)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO ts_stub.calls (call) VALUES (concat_ws(' ', 'create_hypertable',
        relation::text, time_column_name, chunk_time_interval::text, if_not_exists::text));
$$;
CREATE FUNCTION ts_stub.add_compression_policy(
    hypertable regclass, compress_after interval, if_not_exists boolean DEFAULT false)
RETURNS integer LANGUAGE sql AS $$
    INSERT INTO ts_stub.calls (call) VALUES (concat_ws(' ', 'add_compression_policy',
        hypertable::text, compress_after::text, if_not_exists::text)) RETURNING 1;
$$;
CREATE FUNCTION ts_stub.add_retention_policy(
    relation regclass, drop_after interval, if_not_exists boolean DEFAULT false)
RETURNS integer LANGUAGE sql AS $$
    INSERT INTO ts_stub.calls (call) VALUES (concat_ws(' ', 'add_retention_policy',
        relation::text, drop_after::text, if_not_exists::text)) RETURNING 1;
$$;
"""


def split_sql(sql: str) -> list[str]:
    """Statements of our schema files (each ends with ';' at the end of a line)."""
    out = []
    for chunk in sql.split(";\n"):
        body = "\n".join(
            line for line in chunk.splitlines() if not line.lstrip().startswith("--")
        ).strip()
        if body:
            out.append(body)
    return out


# -- partitions -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, day: dt.date) -> None:
        self.t = parts.day_bounds(day)[0].timestamp() + 12 * 3600

    def __call__(self) -> float:
        return self.t

    def advance_days(self, n: int) -> None:
        self.t += n * 86_400


async def partition_days(table: str) -> list[dt.date]:
    conn = await asyncpg.connect(DSN)
    try:
        days = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass($1)",
            table,
        )
    finally:
        await conn.close()
    return sorted(d for r in days if (d := parts.parse_partition_day(table, r["relname"])))


class TestPartitions:
    async def test_created_ahead_and_dropped_after_retention(
        self, table: str, tmp_path: Path
    ) -> None:
        """Start-up creates today+3; nine days later maintenance drops the expired days."""
        d0 = dt.date(2031, 3, 10)
        clock = FakeClock(d0)
        settings = pg_settings(table, tmp_path)
        async with QuoteStore.connect(settings, clock=clock) as store:
            assert store.mode == "native"
            assert await partition_days(table) == [d0 + dt.timedelta(days=i) for i in range(4)]
            noon = int(clock())
            store.submit([make_quote("AAA", noon), make_quote("AAA", noon + 86_400)])
            assert await store.flush(10)
            clock.advance_days(9)
            plan = await store.run_maintenance()
            assert plan is not None
            assert plan.drop == (d0, d0 + dt.timedelta(days=1))
            have = await partition_days(table)
            assert have[0] == d0 + dt.timedelta(days=2)
            assert have[-1] == d0 + dt.timedelta(days=12)
            # the row of d0 went with its partition; the row of d0+1 too
            assert await counts(DSN, table) == (0, 0)
            # an explicit date wins over the clock
            plan = await store.run_maintenance(today=d0 + dt.timedelta(days=20))
            assert plan is not None and plan.drop[-1] == d0 + dt.timedelta(days=12)

    async def test_maintain_command_with_forced_date(self, table: str, tmp_path: Path) -> None:
        """`db maintain` runs the same maintenance once, for a given day."""
        settings = pg_settings(table, tmp_path)
        out = io.StringIO()
        assert await migrate_command(settings, out) == 0
        d = dt.date(2031, 6, 1)
        assert await maintain_command(settings, out, today=d) == 0
        assert f"({d})" in out.getvalue()
        assert d + dt.timedelta(days=3) in await partition_days(table)

    async def test_late_rows_get_a_partition_on_demand(self, table: str, tmp_path: Path) -> None:
        """Yesterday's quote is stored; a quote older than the retention is not."""
        async with QuoteStore.connect(pg_settings(table, tmp_path)) as store:
            store.submit(
                [
                    make_quote("LATE", NOW - 86_400),
                    make_quote("OLD", NOW - 9 * 86_400),
                    make_quote("NOW", NOW),
                ]
            )
            assert await store.flush(10)
            stats = store.stats
        assert await counts(DSN, table) == (2, 2)
        assert (stats.rows_written, stats.rows_expired) == (2, 1)


@pytest.fixture
async def partman_dsn() -> AsyncIterator[str]:
    """A database of its own with pg_partman installed (schema ``partman``), dropped after."""
    admin = await asyncpg.connect(DSN)
    try:
        if not await admin.fetchval(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_partman'"
        ):
            pytest.skip("pg_partman not installed (Debian package postgresql-15-partman)")
        db = f"ia_partman_{uuid.uuid4().hex[:10]}"
        await admin.execute(f"CREATE DATABASE {db}")
    finally:
        await admin.close()
    dsn = DSN.rsplit("/", 1)[0] + "/" + db
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman")
    finally:
        await conn.close()
    yield dsn
    admin = await asyncpg.connect(DSN)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    finally:
        await admin.close()


class TestPartman:
    async def test_pg_partman_manages_partitions_when_installed(
        self, partman_dsn: str, tmp_path: Path
    ) -> None:
        """The table is registered with pg_partman (daily, retention 7 days, expired partitions
        dropped, not just detached); the engine runs its maintenance and writes through."""
        table = "t_partman"
        async with QuoteStore.connect(pg_settings(table, tmp_path, dsn=partman_dsn)) as store:
            assert (store.mode, store.partition_manager) == ("native", "pg_partman")
            store.submit([make_quote("AAA", NOW), make_quote("AAA", NOW - 86_400)])
            assert await store.flush(10)
            conn = await asyncpg.connect(partman_dsn)
            try:
                cfg = await conn.fetchrow(
                    "SELECT partition_interval, retention, retention_keep_table, premake "
                    "FROM partman.part_config WHERE parent_table = 'public.t_partman'"
                )
                # a partition 10 days old, as if the engine had been running then
                await conn.execute(
                    "SELECT partman.create_partition_time('public.t_partman', "
                    "ARRAY[now() - interval '10 days'])"
                )
                old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=10)).strftime("%Y_%m_%d")
                assert await conn.fetchval("SELECT to_regclass($1)", f"{table}_p{old}")
                assert await store.run_maintenance() is None
                gone = await conn.fetchval("SELECT to_regclass($1) IS NULL", f"{table}_p{old}")
                today = dt.datetime.now(dt.UTC).strftime("%Y_%m_%d")
                has_today = await conn.fetchval("SELECT to_regclass($1)", f"{table}_p{today}")
                in_default = await conn.fetchval(f"SELECT count(*) FROM {table}_default")
            finally:
                await conn.close()
        assert cfg["retention"] == "7 days" and cfg["retention_keep_table"] is False
        assert cfg["premake"] == 4 and cfg["partition_interval"] == "1 day"
        assert gone and has_today
        assert await counts(partman_dsn, table) == (2, 2)
        assert in_default == 0  # both rows found their daily partition
        out = io.StringIO()
        assert await stats_command(pg_settings(table, tmp_path, dsn=partman_dsn), out) == 0
        assert "managed by pg_partman" in out.getvalue()
        assert await maintain_command(pg_settings(table, tmp_path, dsn=partman_dsn), out) == 0


# -- writing ----------------------------------------------------------------------------------


class TestWrites:
    async def test_duplicates_make_no_rows(self, table: str, tmp_path: Path) -> None:
        """The same quote in a batch, in two batches, or after a restart is stored once."""
        settings = pg_settings(table, tmp_path)
        async with QuoteStore.connect(settings) as store:
            store.submit(cycle(0, 300) + cycle(0, 300))
            store.submit(cycle(0, 300))
            store.submit(cycle(1, 300))
            assert await store.flush(10)
            stats = store.stats
        async with QuoteStore.connect(settings) as store:  # fresh memory: dedup by the key
            store.submit(cycle(1, 300))
            assert await store.flush(10)
            again = store.stats
        assert await counts(DSN, table) == (600, 600)
        assert stats.rows_written == 600 and stats.rows_duplicate == 600
        assert again.rows_written == 0 and again.rows_duplicate == 300

    async def test_a_newer_price_for_the_same_quote_time_keeps_the_first(
        self, table: str, tmp_path: Path
    ) -> None:
        """One row per (symbol, market time): the first version wins."""
        async with QuoteStore.connect(pg_settings(table, tmp_path)) as store:
            store.submit([make_quote("AAA", NOW, price=1.0)])
            assert await store.flush(10)
            store.submit([make_quote("AAA", NOW, price=2.0)])
            assert await store.flush(10)
        conn = await asyncpg.connect(DSN)
        try:
            assert await conn.fetchval(f"SELECT price FROM {table}") == 1.0
        finally:
            await conn.close()

    async def test_a_higher_volume_for_the_same_quote_time_updates_the_row(
        self, table: str, tmp_path: Path
    ) -> None:
        """(symbol, market time, volume) is a quote's identity: a volume that grew at the same
        market time is a new observation and updates the row (a lower one does not), also when
        the writer has forgotten what it stored and when one batch holds both."""
        base = make_quote("AAA", NOW, price=1.0)
        more = msgspec.structs.replace(base, price=2.0, volume=1500)
        less = msgspec.structs.replace(base, price=3.0, volume=900)
        most = msgspec.structs.replace(base, price=4.0, volume=2000)
        async with QuoteStore.connect(pg_settings(table, tmp_path)) as store:
            store.submit([base])
            assert await store.flush(10)
            store.submit([more])
            assert await store.flush(10)
            store.submit([less])
            assert await store.flush(10)
            stats = store.stats
        async with QuoteStore.connect(pg_settings(table, tmp_path)) as store:
            store.submit([more, most, less])
            assert await store.flush(10)
            again = store.stats
        assert stats.rows_written == 2 and stats.rows_duplicate == 1
        assert again.rows_written == 1 and again.rows_duplicate == 2
        conn = await asyncpg.connect(DSN)
        try:
            row = await conn.fetchrow(f"SELECT price, volume FROM {table}")
            assert (row["price"], row["volume"]) == (4.0, 2000)
        finally:
            await conn.close()

    async def test_malicious_symbols_are_data_not_sql(self, table: str, tmp_path: Path) -> None:
        """Quotes, semicolons, backslashes, unicode round-trip; NUL / lone surrogate refused."""
        evil = [
            "'; DROP TABLE market_data; --",
            f'"); DROP TABLE {table}; --',
            "A\\'B",
            "$$; SELECT pg_sleep(10); $$",
            "ΑΒΓ-€",
            "\u202eRTL",
            "😀",
            "E'\\x00'",
        ]
        refused = [make_quote("NUL\x00X", NOW), make_quote("\ud800X", NOW)]
        quotes = [make_quote(s, NOW) for s in evil] + refused
        async with QuoteStore.connect(pg_settings(table, tmp_path)) as store:
            store.submit(quotes)
            assert await store.flush(10)
            stats = store.stats
        conn = await asyncpg.connect(DSN)
        try:
            got = {r["symbol"] for r in await conn.fetch(f"SELECT symbol FROM {table}")}
        finally:
            await conn.close()
        assert got == set(evil)
        assert (stats.rows_written, stats.rows_rejected) == (len(evil), 2)

    async def test_correlation_ids(self, table: str, tmp_path: Path) -> None:
        """A malformed correlation id is stored as NULL; a uuid-shaped non-hex one is refused
        by asyncpg's encoder and that row alone is rejected (the batch is bisected)."""
        good = make_quote("GOOD", NOW)
        quotes = [
            good,
            msgspec.structs.replace(make_quote("NOID", NOW), correlation_id=""),
            msgspec.structs.replace(
                make_quote("BADHEX", NOW), correlation_id="zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"
            ),
            *cycle(0, 50),
        ]
        async with QuoteStore.connect(pg_settings(table, tmp_path)) as store:
            store.submit(quotes)
            assert await store.flush(10)
            stats = store.stats
        conn = await asyncpg.connect(DSN)
        try:
            ids = {
                r["symbol"]: r["correlation_id"]
                for r in await conn.fetch(f"SELECT symbol, correlation_id FROM {table}")
            }
        finally:
            await conn.close()
        assert (stats.rows_written, stats.rows_rejected) == (52, 1)
        assert ids["NOID"] is None and str(ids["GOOD"]) == good.correlation_id
        assert "BADHEX" not in ids

    def test_table_name_is_checked_again(self, tmp_path: Path) -> None:
        """A table name that bypassed config validation is refused before any SQL."""
        bad = PostgresSettings(table='x"; DROP TABLE y; --', spill_dir=str(tmp_path))
        with pytest.raises(ValueError):
            QuoteStore(bad)

    async def test_submit_after_close_is_an_error(self, table: str, tmp_path: Path) -> None:
        """Use after aclose() fails loudly; aclose() is idempotent."""
        store = QuoteStore.connect(pg_settings(table, tmp_path))
        async with store:
            pass
        await store.aclose()
        with pytest.raises(StoreError):
            store.submit(cycle(0, 1))

    async def test_disabled_store_accepts_and_ignores(self, tmp_path: Path) -> None:
        """postgres.enabled = false: submit is a no-op, nothing connects."""
        settings = pg_settings("t_disabled", tmp_path, dsn="postgresql://x@127.0.0.1:1/x")
        settings = PostgresSettings(**{**_fields(settings), "enabled": False})
        async with QuoteStore.connect(settings) as store:
            store.submit(cycle(0, 10))
            assert await store.flush(1)


def _fields(s: PostgresSettings) -> dict[str, Any]:
    return {f: getattr(s, f) for f in s.__struct_fields__}


# -- outages ----------------------------------------------------------------------------------


def progressed(store: QuoteStore) -> Callable[[], bool]:
    """A predicate: the store committed rows since this call."""

    def done() -> int:
        return store.stats.rows_written + store.stats.rows_duplicate

    before = done()
    return lambda: done() > before


class TestOutages:
    async def test_connections_killed_mid_run(
        self, table: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """pg_terminate_backend while writing: every quote ends up in the table exactly once."""
        settings = pg_settings(table, tmp_path, pool_size=2)
        killer = await asyncpg.connect(DSN)
        kills = 0
        try:
            async with QuoteStore.connect(settings, batch_rows=400) as store:
                for n in range(12):
                    store.submit(cycle(n, 2000))  # 5 transactions of 400 rows
                    # once one transaction of this cycle committed, the next one is running
                    await until(progressed(store))
                    kills += len(
                        await killer.fetch(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = $1 AND pid <> pg_backend_pid()",
                            f"ingestion-agent:{table}",
                        )
                    )
                assert await store.flush(60)
                stats = store.stats
        finally:
            await killer.close()
        assert kills >= 12
        assert stats.outages >= 3  # kills that hit a transaction in flight
        assert await counts(DSN, table) == (24_000, 24_000)
        # a batch committed just before its connection died is retried and then counted as
        # duplicate: the counters are at-least-once, the table is exactly-once
        assert stats.rows_written + stats.rows_duplicate == 24_000
        assert stats.rows_dropped == 0 and stats.rows_rejected == 0

    @pytest.mark.xdist_group("own_pg_server")  # one module server for both (make test)
    async def test_server_stopped_spills_then_recovers_exactly_once(
        self, own_pg: OwnPostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Outage: submit stays instant, memory is bounded by spilling, all rows land once."""
        table = f"t_out_{uuid.uuid4().hex[:8]}"
        spill = tmp_path / "spill"
        settings = pg_settings(
            table, spill, dsn=own_pg.dsn, max_buffered_rows=1000, command_timeout_s=2.0
        )
        caplog.set_level(logging.INFO, logger="engine.sinks.store")
        async with QuoteStore.connect(settings) as store:
            store.submit(cycle(0, 600))
            assert await store.flush(10)
            await asyncio.to_thread(own_pg.stop)
            longest = 0.0
            for n in range(1, 8):
                t0 = time.perf_counter()
                store.submit(cycle(n, 600))
                longest = max(longest, time.perf_counter() - t0)
                await asyncio.sleep(0.01)
            await until(lambda: not store.stats.available and store.stats.rows_spilled > 0)
            assert store.stats.rows_buffered <= 2 * settings.max_buffered_rows
            assert spill_paths(spill, table)
            await asyncio.to_thread(own_pg.start)
            assert await store.flush(30)
            stats = store.stats
        assert longest < 0.05
        assert await counts(own_pg.dsn, table) == (4800, 4800)
        assert stats.rows_written == 4800 and stats.outages == 1 and stats.available
        assert stats.rows_spilled == 0 and stats.rows_spilled_total > 0
        assert not spill_paths(spill, table)
        events = [r.getMessage() for r in caplog.records]
        assert events.count("pg_unavailable") == 1
        assert events.count("pg_recovered") == 1

    @pytest.mark.xdist_group("own_pg_server")  # one module server for both (make test)
    async def test_start_without_database_then_it_appears(
        self, own_pg: OwnPostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Start-up with PostgreSQL down: bounded retries, one clear ERROR, no crash; later
        the background writer connects, migrates and writes the backlog."""
        table = f"t_late_{uuid.uuid4().hex[:8]}"
        settings = pg_settings(table, tmp_path, dsn=own_pg.dsn, connect_attempts=3)
        await asyncio.to_thread(own_pg.stop)
        caplog.set_level(logging.INFO, logger="engine.sinks.store")
        async with QuoteStore.connect(settings) as store:
            before = (store.stats.available, store.mode)
            store.submit(cycle(0, 500))
            await asyncio.to_thread(own_pg.start)
            assert await store.flush(30)
            after = (store.stats.available, store.mode)
        assert before == (False, None)
        assert after == (True, "native")
        assert await counts(own_pg.dsn, table) == (500, 500)
        events = [r.getMessage() for r in caplog.records]
        assert events.count("pg_connect_retried") == 2
        assert events.count("pg_unreachable_at_startup") == 1

    async def test_flush_timeout_spills_and_next_run_replays(
        self, table: str, tmp_path: Path
    ) -> None:
        """Shutdown during an outage loses nothing: the next run writes the spill files."""
        dead = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
        spill = tmp_path / "spill"
        async with QuoteStore.connect(pg_settings(table, spill, dsn=dead)) as store:
            store.submit(cycle(0, 700))
            store.submit(cycle(1, 700))
            assert not await store.flush(0.2)
            assert store.stats.rows_buffered == 0
            assert store.stats.rows_spilled == 1400
        assert spill_paths(spill, table)
        async with QuoteStore.connect(pg_settings(table, spill)) as store:
            assert await store.flush(10)
            assert store.stats.rows_written == 1400
        assert await counts(DSN, table) == (1400, 1400)
        assert not spill_paths(spill, table)

    async def test_configuration_errors_are_raised(self, tmp_path: Path) -> None:
        """An unknown database is a mistake, not an outage: enter raises, not retryable."""
        dsn = "postgresql://postgres@127.0.0.1:5432/no_such_db_ingestion"
        with pytest.raises(StoreError) as exc_info:
            async with QuoteStore.connect(pg_settings("t_x", tmp_path, dsn=dsn)):
                pass
        assert exc_info.value.retryable is False


# -- db commands ----------------------------------------------------------------------------


class TestCommands:
    async def test_migrate_and_stats(self, table: str, tmp_path: Path) -> None:
        """`db migrate` is idempotent; `db stats` reports rows per day, partitions and size."""
        settings = pg_settings(table, tmp_path)
        out = io.StringIO()
        assert await migrate_command(settings, out) == 0
        assert await migrate_command(settings, out) == 0
        lines = out.getvalue().splitlines()
        assert "from version 0 to 1" in lines[0]
        assert "nothing to do" in lines[1]
        async with QuoteStore.connect(settings) as store:
            store.submit(cycle(0, 50) + cycle(-86_400, 20))
            assert await store.flush(10)
        out = io.StringIO()
        assert await stats_command(settings, out) == 0
        text = out.getvalue()
        today = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
        assert "rows          70" in text
        assert f"{today.isoformat()}  " in text
        assert f"{table}_p{today:%Y%m%d}" in text
        out = io.StringIO()
        assert await stats_command(settings, out, fmt="json") == 0
        assert '"rows":70' in out.getvalue()

    async def test_stats_of_a_missing_table_or_database(self, tmp_path: Path) -> None:
        """Errors are one line on err and exit status 1, never a traceback."""
        out, err = io.StringIO(), io.StringIO()
        assert await stats_command(pg_settings("t_never_made", tmp_path), out, err) == 1
        dead = pg_settings("t_x", tmp_path, dsn=f"postgresql://u:pw@127.0.0.1:{free_port()}/x")
        assert await stats_command(dead, out, err) == 1
        assert await migrate_command(dead, out, err) == 1
        assert "db migrate" in err.getvalue() and "pw" not in err.getvalue()
