"""CopyWriter without a database: what is written, skipped and counted; COPY vs staging."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from engine.config import PostgresSettings
from engine.sinks.store.copy_writer import CopyWriter
from engine.sinks.store.stats import StoreCounters
from tests.unit.sinks.store.quotes import NOW, make_quote

DAY = 86_400


def writer(c: StoreCounters) -> CopyWriter:
    settings = PostgresSettings(table="t_quotes", retention_days=7, partitions_ahead_days=2)
    return CopyWriter(settings, "t_quotes", clock=lambda: NOW, counters=c)


class FakeConn:
    """Records COPY targets; plain COPY into the table raises ``direct_error`` once if set."""

    def __init__(self, direct_error: Exception | None = None) -> None:
        self.direct_error = direct_error
        self.copies: list[str] = []
        self.executed: list[str] = []

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield

    async def copy_records_to_table(
        self, table: str, *, records: Sequence[Any], columns: Sequence[str]
    ) -> None:
        self.copies.append(table)
        if table == "t_quotes" and self.direct_error is not None:
            err, self.direct_error = self.direct_error, None
            raise err

    async def execute(self, sql: str) -> str:
        self.executed.append(sql)
        return "INSERT 0 1" if sql.startswith("INSERT") else "CREATE TABLE"


def test_rows_to_write_skips_repeats_expired_and_bogus() -> None:
    c = StoreCounters()
    w = writer(c)
    quotes = [
        make_quote("OK"),
        make_quote("OLD", NOW - 30 * DAY),  # past retention: expired
        make_quote("FUTURE", NOW + 30 * DAY),  # beyond the partitions ahead: bogus
        make_quote("NUL\x00"),  # unstorable
    ]
    rows, kept = w.rows_to_write(quotes)
    assert [q.symbol for q in kept] == ["OK"] and len(rows) == 1
    assert (c.expired, c.rejected, c.duplicate) == (1, 2, 0)
    w.committed(rows, kept, inserted=1, rejected=0)
    rows, kept = w.rows_to_write([make_quote("OK")])  # the same quote again: a known repeat
    assert rows == [] and c.duplicate == 1 and c.written == 1
    w.forget_written()
    assert len(w.rows_to_write([make_quote("OK")])[0]) == 1


async def test_plain_copy_until_a_conflict_then_staging_for_a_while() -> None:
    c = StoreCounters()
    w = writer(c)
    rows, kept = w.rows_to_write([make_quote("A")])
    conn = FakeConn()
    assert await w.write(conn, rows, kept) == (1, 0)
    assert conn.copies == ["t_quotes"]
    conn = FakeConn(asyncpg.UniqueViolationError("dup"))
    assert await w.write(conn, rows, kept) == (1, 0)  # the staged INSERT's row count
    assert conn.copies == ["t_quotes", "_ingest_stage_t_quotes"]
    assert "ON CONFLICT (symbol, market_time) DO UPDATE" in conn.executed[-1]
    assert "WHERE excluded.volume > " in conn.executed[-1]
    conn = FakeConn()
    await w.write(conn, rows, kept)
    assert conn.copies == ["_ingest_stage_t_quotes"]  # still staging after the conflict


async def test_bad_rows_are_bisected_out() -> None:
    c = StoreCounters()
    w = writer(c)
    rows, kept = w.rows_to_write([make_quote(f"S{i}") for i in range(4)])

    class OneBadRow(FakeConn):
        async def copy_records_to_table(
            self, table: str, *, records: Sequence[Any], columns: Sequence[str]
        ) -> None:
            if any(r[1] == "S2" for r in records):
                raise asyncpg.DataError("bad value")

    assert await w.write(OneBadRow(), rows, kept) == (3, 1)
    assert c.rejected == 1


async def test_an_outage_is_raised_not_bisected() -> None:
    w = writer(StoreCounters())
    rows, kept = w.rows_to_write([make_quote("A"), make_quote("B")])
    with pytest.raises(ConnectionResetError):
        await w.write(FakeConn(ConnectionResetError("reset")), rows, kept)
