"""PostgreSQL (asyncpg): connect, pool, ping, and error translation into :class:`StoreError`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Final

import asyncpg
import asyncpg.exceptions._base as asyncpg_base

from engine.config import PostgresSettings
from engine.deps import describe, translating
from engine.errors import StoreConfigError, StoreError

FATAL_ERRORS: Final = (
    asyncpg.InvalidAuthorizationSpecificationError,  # includes a bad password (28P01)
    asyncpg.InvalidCatalogNameError,  # the database does not exist
    asyncpg_base.ClientConfigurationError,
)
"""Refusals that waiting cannot fix: :class:`StoreConfigError`."""

ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
"""Everything asyncpg raises for a failed connection, query or COPY."""


def error_for(exc: BaseException, what: str) -> StoreError:
    """The engine error for an asyncpg/OS failure while doing ``what``."""
    if isinstance(exc, FATAL_ERRORS):
        return StoreConfigError(f"{what}: {describe(exc)}; check postgres.dsn")
    return StoreError(f"{what}: {describe(exc)}")


def translate(what: str) -> AbstractContextManager[None]:
    """Turn asyncpg and socket errors raised inside into :class:`StoreError` (``from`` them)."""
    return translating(ERRORS, lambda exc: error_for(exc, what))


def _server_settings(purpose: str) -> dict[str, str]:
    return {"application_name": f"ingestion-agent:{purpose}", "client_min_messages": "warning"}


async def connect(settings: PostgresSettings, *, purpose: str) -> Any:
    """One connection (for a command or a probe); :class:`StoreError` names the redacted DSN."""
    with translate(f"cannot connect to PostgreSQL at {settings.dsn.redacted()}"):
        return await asyncpg.connect(
            settings.dsn.reveal(),
            timeout=settings.command_timeout_s,
            command_timeout=settings.command_timeout_s,
            server_settings=_server_settings(purpose),
        )


async def create_pool(
    settings: PostgresSettings, *, purpose: str, max_size: int | None = None
) -> Any:
    """A connection pool (1 to ``max_size``, default ``postgres.pool_size``)."""
    with translate(f"cannot connect to PostgreSQL at {settings.dsn.redacted()}"):
        return await asyncpg.create_pool(
            settings.dsn.reveal(),
            min_size=1,
            max_size=max_size or settings.pool_size,
            timeout=settings.command_timeout_s,
            command_timeout=settings.command_timeout_s,
            server_settings=_server_settings(purpose),
        )


async def ping(conn: Any, timeout_s: float) -> None:
    """``SELECT 1`` on a connection or a pool; :class:`StoreError` if it does not answer."""
    with translate("PostgreSQL did not answer SELECT 1"):
        await conn.fetchval("SELECT 1", timeout=timeout_s)


async def probe(settings: PostgresSettings, timeout_s: float) -> None:
    """Connect, ``SELECT 1``, close, each bounded by ``timeout_s``: for pre-flight checks."""
    with translate(f"cannot connect to PostgreSQL at {settings.dsn.redacted()}"):
        conn = await asyncpg.connect(
            settings.dsn.reveal(),
            timeout=timeout_s,
            command_timeout=timeout_s,
            server_settings=_server_settings("probe"),
        )
    try:
        await ping(conn, timeout_s)
    finally:
        with translate("PostgreSQL close"):
            await conn.close(timeout=timeout_s)
