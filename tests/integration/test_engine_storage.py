"""The whole engine with PostgreSQL and Redis: what is published is stored, through outages."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from testkit import EmulatorProcess, EngineProcess, OwnRedis, stream_messages
from tests.conftest import NATS_URL
from tests.integration.test_engine_cycle import _env
from tests.integration.test_store import drop_table

pytestmark = [pytest.mark.integration]

DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def table() -> Iterator[str]:
    name = f"md_{uuid.uuid4().hex[:10]}"
    yield name

    asyncio.run(drop_table(DSN, name))


async def _rows(table: str) -> set[tuple[str, int]]:
    conn = await asyncpg.connect(DSN)
    try:
        rows = await conn.fetch(
            f'SELECT symbol, extract(epoch FROM market_time)::bigint AS t FROM "{table}"'
        )
        return {(r["symbol"], int(r["t"])) for r in rows}
    finally:
        await conn.close()


async def _kill_backends(table: str) -> int:
    conn = await asyncpg.connect(DSN)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid()",
            f"ingestion-agent:{table}",
        )
        return len(rows)
    finally:
        await conn.close()


def _stream_ids(stream: str) -> set[tuple[str, int]]:
    return {(p["symbol"], p["market_time"]) for p, _ in stream_messages(NATS_URL, stream)}


def _storage_env(emu: EmulatorProcess, names: dict[str, str], tmp: Path, table: str,
                 redis_url: str, prefix: str) -> dict[str, str]:  # fmt: skip
    return _env(
        emu.url, names, tmp,
        INGEST_SCHEDULER__INTERVAL_S="1",
        INGEST_POSTGRES__ENABLED="true",
        INGEST_POSTGRES__DSN=DSN,
        INGEST_POSTGRES__TABLE=table,
        INGEST_POSTGRES__SPILL_DIR=str(tmp / "spill"),
        INGEST_POSTGRES__FLUSH_TIMEOUT_S="1",
        INGEST_REDIS__ENABLED="true",
        INGEST_REDIS__URL=redis_url,
        INGEST_REDIS__KEY_PREFIX=prefix,
    )  # fmt: skip


class TestStorageThroughOutages:
    @pytest.mark.timeout(120)
    def test_killed_db_connections_every_published_quote_stored_once(
        self, nats_names: dict[str, str], tmp_path: Path, table: str
    ) -> None:
        """pg_terminate_backend during cycles: the table equals the stream, row for message."""
        prefix = f"t{uuid.uuid4().hex[:8]}:"
        with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "2"]) as emu:
            env = _storage_env(emu, nats_names, tmp_path, table, REDIS_URL, prefix)
            with EngineProcess(["run"], env) as eng:
                eng.wait_event("cycle_completed")
                kills = 0
                for n in range(2, 5):
                    kills += asyncio.run(_kill_backends(table))
                    eng.wait_event("cycle_completed", count=n)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait() == 0
        assert kills >= 1
        published = _stream_ids(nats_names["INGEST_NATS__STREAM"])
        stored = asyncio.run(_rows(table))
        assert len(published) > 4000
        assert stored == published
        r = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
            assert len(keys) == len({s for s, _ in published})
            assert 0 < r.ttl(keys[0]) <= 60
            r.delete(*keys)
        finally:
            r.close()

    @pytest.mark.timeout(120)
    def test_redis_outage_publishing_goes_on_cache_refilled(
        self, nats_names: dict[str, str], tmp_path: Path, table: str
    ) -> None:
        """Redis killed: cycles keep completing; once it is back the cache is refilled."""
        own = OwnRedis()
        own.start()
        try:
            with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "2"]) as emu:
                env = _storage_env(emu, nats_names, tmp_path, table, own.url, "market:")
                with EngineProcess(["run"], env) as eng:
                    eng.wait_event("cycle_completed")
                    own.kill()
                    n = len(eng.named("cycle_completed"))
                    eng.wait_event("cycle_completed", count=n + 2, failed=0)
                    own.start()
                    n = len(eng.named("cycle_completed"))
                    eng.wait_event("cycle_completed", count=n + 2)
                    r = redis.Redis.from_url(own.url)
                    try:
                        keys = list(r.scan_iter(match="market:*", count=1000))
                        ttls = {r.ttl(k) for k in keys[:50]}
                    finally:
                        r.close()
                    eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                    assert eng.wait() == 0
        finally:
            own.kill()
        assert len(keys) > 4000
        assert all(0 < t <= 60 for t in ttls)
        published = _stream_ids(nats_names["INGEST_NATS__STREAM"])
        assert asyncio.run(_rows(table)) == published
