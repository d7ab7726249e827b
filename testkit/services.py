"""Do the shared services the integration tests use answer? One quick probe each, no retries.

The tests never set up services: ``make setup`` does (scripts/ensure_services.py). This module
only finds out, within ``timeout_s``, which of NATS, PostgreSQL and Redis do not answer, so that
a run without them stops at once with one line naming them instead of failing test by test.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis

from engine.config import redact_url

NATS_URL: Final = os.environ.get("IA_TEST_NATS_URL", "nats://127.0.0.1:4222")
POSTGRES_DSN: Final = os.environ.get(
    "TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL: Final = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
START_HINT: Final = (
    "start them with `make setup` (it runs scripts/ensure_services.py --also-postgres "
    "$TEST_POSTGRES_DSN, which starts local servers and creates the test database)"
)


@dataclass(frozen=True, slots=True)
class Missing:
    """A service that did not answer: its name, where it was probed, and why."""

    service: str
    url: str
    reason: str

    def __str__(self) -> str:
        return f"{self.service} at {redact_url(self.url)} ({self.reason})"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    text = str(exc).strip().splitlines()
    reason = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return reason if len(reason) <= 120 else reason[:117] + "..."


async def _nats(url: str) -> None:
    """A NATS server greets every new connection with an ``INFO {...}`` line."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(
        parts.hostname or "127.0.0.1", parts.port or 4222
    )
    try:
        greeting = await reader.readline()
    finally:
        writer.close()
    if not greeting.startswith(b"INFO "):
        raise ConnectionError(f"not a NATS server (it said {greeting[:40]!r})")


async def _postgres(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.close()


async def _redis(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _probe_all(
    nats_url: str, postgres_dsn: str, redis_url: str, timeout_s: float
) -> list[Missing]:
    probes = (
        ("NATS", nats_url, _nats(nats_url)),
        ("PostgreSQL", postgres_dsn, _postgres(postgres_dsn)),
        ("Redis", redis_url, _redis(redis_url)),
    )
    results = await asyncio.gather(
        *(asyncio.wait_for(coro, timeout_s) for _, _, coro in probes), return_exceptions=True
    )
    return [
        Missing(name, url, _reason(result))
        for (name, url, _), result in zip(probes, results, strict=True)
        if isinstance(result, BaseException)
    ]


def missing_services(
    nats_url: str = NATS_URL,
    postgres_dsn: str = POSTGRES_DSN,
    redis_url: str = REDIS_URL,
    *,
    timeout_s: float = 2.0,
) -> list[Missing]:
    """The services that do not answer (probed concurrently, each within ``timeout_s``)."""
    return asyncio.run(_probe_all(nats_url, postgres_dsn, redis_url, timeout_s))


def missing_message(missing: list[Missing]) -> str:
    """One line: which services do not answer, and how to start them."""
    return "services not answering: " + "; ".join(map(str, missing)) + " - " + START_HINT
