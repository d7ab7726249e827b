"""The store's connection to its table: the pool, the migration, who manages the partitions.

:meth:`QuoteTable.prepare` creates the pool (through :mod:`engine.deps.postgres`) if there is
none, migrates the table and, in native mode, finds out whether the engine or pg_partman manages
its partitions (pg_partman's configuration follows ``retention_days`` / ``ahead_days``). Every
failure is a :class:`~engine.errors.StoreError`; a configuration mistake (bad password, unknown
database, a schema newer than this engine) is the non-retryable
:class:`~engine.errors.StoreConfigError`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from engine.config import PostgresSettings
from engine.deps import postgres as pg
from engine.errors import StoreError
from engine.sinks.migrations import Mode, migrate
from engine.sinks.partition_ddl import Manager, configure_partman, partition_manager


class QuoteTable:
    """Owner of the PostgreSQL pool of one quote table."""

    def __init__(
        self,
        settings: PostgresSettings,
        table: str,
        *,
        allow_timescale: bool = True,
        allow_partman: bool = True,
    ) -> None:
        self._settings = settings
        self.name = table
        self._allow_timescale = allow_timescale
        self._allow_partman = allow_partman
        self.pool: Any = None
        self.mode: Mode | None = None
        self.manager: Manager | None = None  # native mode: who creates/drops partitions
        self.partman: str | None = None  # pg_partman's schema when it manages the table
        self.ready = False
        """Migrated and reachable at the last try: writes may go ahead."""

    def acquire(self) -> Any:
        """A pooled connection (``async with table.acquire() as conn``)."""
        if self.pool is None:
            raise StoreError("no connection pool")
        return self.pool.acquire()

    async def prepare(self) -> None:
        """Create the pool if needed and migrate; then :attr:`ready`."""
        try:
            if self.pool is None:
                self.pool = await pg.create_pool(self._settings, purpose=self.name)
            s = self._settings
            async with self.pool.acquire() as conn:
                result = await migrate(
                    conn,
                    self.name,
                    retention_days=s.retention_days,
                    ahead_days=s.partitions_ahead_days,
                    allow_timescale=self._allow_timescale,
                    allow_partman=self._allow_partman,
                )
                self.mode = result.mode
                if self.mode == "native":
                    self.manager, self.partman = await partition_manager(conn, self.name)
                if self.partman is not None:  # follow retention_days / ahead_days changes
                    await configure_partman(
                        conn,
                        self.name,
                        self.partman,
                        retention_days=s.retention_days,
                        ahead_days=s.partitions_ahead_days,
                    )
            self.ready = True
        except StoreError:
            raise
        except Exception as exc:
            raise pg.error_for(exc, "PostgreSQL start-up") from exc

    def note_error(self, cause: BaseException) -> None:
        """A write failed with ``cause``: if the table vanished, migrate again before the next."""
        if isinstance(cause, asyncpg.UndefinedTableError):
            self.ready = False

    async def close(self) -> None:
        """Close the pool (idempotent); a pool that will not close gracefully is terminated."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=5.0)
        except Exception:
            pool.terminate()
