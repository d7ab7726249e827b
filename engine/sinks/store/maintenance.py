"""Partition maintenance of a native quote table: once (``db maintain``) or periodically (store).

The engine's own maintenance (:func:`~engine.sinks.partition_ddl.maintain_partitions`, planned by
:mod:`engine.sinks.partitions`) creates the partitions ``ahead_days`` ahead and drops those past
``retention_days``; for a table registered with pg_partman, pg_partman's ``run_maintenance``
runs instead (on the database's clock). In ``timescale`` mode TimescaleDB's policies do it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from engine.config import PostgresSettings
from engine.sinks import partitions as parts
from engine.sinks.partition_ddl import (
    maintain_partitions,
    partition_manager,
    run_partman_maintenance,
)

logger = logging.getLogger(__name__)


async def maintain_table(
    conn: Any, settings: PostgresSettings, day: dt.date, *, partman: str | None
) -> parts.PartitionPlan | None:
    """One maintenance of ``settings.table`` for ``day``: the engine's plan, or None when
    pg_partman (its schema ``partman``) manages the table and did it."""
    if partman is not None:
        await run_partman_maintenance(conn, settings.table, partman)
        return None
    return await maintain_partitions(
        conn,
        settings.table,
        day,
        retention_days=settings.retention_days,
        ahead_days=settings.partitions_ahead_days,
    )


async def maintain_once(
    conn: Any, settings: PostgresSettings, day: dt.date
) -> parts.PartitionPlan | None:
    """:func:`maintain_table`, asking the database first who manages the partitions."""
    manager, schema = await partition_manager(conn, settings.table)
    return await maintain_table(
        conn, settings, day, partman=schema if manager == "pg_partman" else None
    )


async def maintain_periodically(
    maintain: Callable[[], Awaitable[object]],
    interval_s: float,
    *,
    due: Callable[[], bool],
    stopped: Callable[[], bool],
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Every ``interval_s``: ``maintain()`` if ``due()``; a failure is logged and retried at the
    next interval. Ends once ``stopped()``."""
    while not stopped():
        await sleep(interval_s)
        if not due():
            continue
        try:
            await maintain()
        except Exception as exc:
            logger.warning(
                "partition_maintenance_failed",
                extra={
                    "error_kind": type(exc).__name__,
                    "error": str(exc)[:300],
                    "retry_in_s": interval_s,
                },
            )
