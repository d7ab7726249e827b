"""Redis (redis-py asyncio): the client, ping, and error translation into :class:`CacheError`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from engine.config import RedisSettings
from engine.deps import describe, translating
from engine.errors import CacheError

ERRORS: Final = (RedisError, OSError, TimeoutError)
"""Everything redis-py raises for a failed connection or command."""


def translate(what: str) -> AbstractContextManager[None]:
    """Turn redis-py and socket errors raised inside into :class:`CacheError` (``from`` them)."""
    return translating(ERRORS, lambda exc: CacheError(f"{what}: {describe(exc)}"))


def client(settings: RedisSettings, *, timeout_s: float | None = None) -> aioredis.Redis:
    """A client that fails fast: socket timeouts, no hidden retries (callers own their retry)."""
    t = settings.timeout_s if timeout_s is None else timeout_s
    return aioredis.Redis.from_url(
        settings.url.reveal(),
        socket_timeout=t,
        socket_connect_timeout=t,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        decode_responses=False,
    )


async def ping(redis: aioredis.Redis) -> None:
    """``PING``; :class:`CacheError` if Redis does not answer."""
    with translate("Redis did not answer PING"):
        await redis.ping()


async def probe(settings: RedisSettings, timeout_s: float) -> None:
    """A client, ``PING``, close, bounded by ``timeout_s``: for pre-flight checks."""
    r = client(settings, timeout_s=timeout_s)
    try:
        await ping(r)
    finally:
        await r.aclose()
