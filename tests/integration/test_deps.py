"""engine.deps: one connect, ping and error translation per dependency, on the real services."""

from __future__ import annotations

import os

import pytest

from engine.config import NatsSettings, PostgresSettings, RedisSettings, Secret
from engine.deps import nats as nats_dep
from engine.deps import postgres as postgres_dep
from engine.deps import redis as redis_dep
from engine.errors import CacheError, PublishError, StoreConfigError, StoreError
from testkit import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("IA_TEST_NATS_URL", "nats://127.0.0.1:4222")
PASSWORD = "s3cr3t-never-shown"


def pg(dsn: str) -> PostgresSettings:
    return PostgresSettings(dsn=Secret(dsn), command_timeout_s=3)


class TestPostgres:
    async def test_connect_and_ping(self) -> None:
        """A connection answers SELECT 1; so does a pool."""
        conn = await postgres_dep.connect(pg(DSN), purpose="test")
        try:
            await postgres_dep.ping(conn, 2)
        finally:
            await conn.close()
        pool = await postgres_dep.create_pool(pg(DSN), purpose="test", max_size=2)
        try:
            await postgres_dep.ping(pool, 2)
        finally:
            await pool.close()

    async def test_unreachable_is_a_retryable_store_error_without_the_password(self) -> None:
        """Nothing listening: StoreError (retryable), the DSN redacted in the message."""
        dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/test"
        with pytest.raises(StoreError) as info:
            await postgres_dep.connect(pg(dsn), purpose="test")
        assert info.value.retryable and type(info.value) is StoreError
        assert PASSWORD not in str(info.value) and "127.0.0.1" in str(info.value)

    async def test_unknown_database_is_a_config_error(self) -> None:
        """A database that does not exist cannot appear by waiting: not retryable."""
        base = DSN.rsplit("/", 1)[0]
        with pytest.raises(StoreConfigError) as info:
            await postgres_dep.connect(pg(f"{base}/no_such_db_ia"), purpose="test")
        assert not info.value.retryable and "postgres.dsn" in str(info.value)


class TestRedis:
    async def test_ping(self) -> None:
        client = redis_dep.client(RedisSettings())
        try:
            await redis_dep.ping(client)
        finally:
            await client.aclose()

    async def test_unreachable_is_a_cache_error(self) -> None:
        """Nothing listening: CacheError at once (no hidden retries), password not shown."""
        url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
        client = redis_dep.client(RedisSettings(url=Secret(url), timeout_s=1))
        try:
            with pytest.raises(CacheError) as info:
                await redis_dep.ping(client)
        finally:
            await client.aclose()
        assert info.value.retryable and PASSWORD not in str(info.value)


class TestNats:
    async def test_probe_and_connect(self) -> None:
        """The probe answers; the engine's connection pings and drains."""
        settings = NatsSettings(url=Secret(NATS_URL))
        await nats_dep.probe(settings, 2)
        nc = await nats_dep.connect(settings, attempts=1)
        try:
            await nats_dep.ping(nc, 2)
        finally:
            await nc.drain()

    async def test_unreachable_is_a_publish_error(self) -> None:
        """Nothing listening: PublishError naming the redacted URL."""
        url = f"nats://user:{PASSWORD}@127.0.0.1:{free_port()}"
        settings = NatsSettings(url=Secret(url))
        with pytest.raises(PublishError) as info:
            await nats_dep.probe(settings, 1)
        assert PASSWORD not in str(info.value) and "127.0.0.1" in str(info.value)
        with pytest.raises(PublishError) as info:
            await nats_dep.connect(settings, attempts=1)
        assert PASSWORD not in str(info.value)
