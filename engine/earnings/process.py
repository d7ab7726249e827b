"""The earnings child process: :func:`earnings_main` (forked by the supervisor) runs
:func:`run_earnings` until the supervisor says ``Stop`` or the control pipe closes."""

from __future__ import annotations

import asyncio
import logging
from multiprocessing.connection import Connection
from typing import Final

from engine.config import Config, EarningsSettings
from engine.earnings.job import EarningsJob
from engine.earnings.services import open_services
from engine.errors import ConfigError, IngestionError
from engine.observe import logs
from engine.retry import RetryPolicy, retry
from engine.runtime import ipc
from engine.runtime.child import ConnReader, child_init, run_loop
from engine.runtime.tasks import TaskSupervisor
from engine.source.guard import Guard

log = logging.getLogger(__name__)

STARTUP_RETRY_CAP_S: Final = 300.0


def _startup_retryable(exc: BaseException) -> bool:
    """Every failure to start is waited out except a configuration error (which stops it)."""
    return isinstance(exc, IngestionError) and not isinstance(exc, ConfigError)


def _log_startup_failure(attempt: int, exc: BaseException, delay_s: float) -> None:
    kind = exc.kind if isinstance(exc, IngestionError) else type(exc).__name__
    log.error(
        "earnings_startup_failed",
        extra={"error": str(exc)[:300], "error_kind": kind, "retry_in_s": delay_s},
    )


async def run_earnings(
    config: Config,
    stop: asyncio.Event,
    *,
    guard: Guard | None = None,
    settings: EarningsSettings | None = None,
    startup_retry_s: float = 5.0,
) -> None:
    """Run the earnings job until ``stop`` is set (connections retried while they fail)."""
    earnings = settings or config.earnings
    if not earnings.enabled:
        log.info("earnings_disabled")
        return
    if stop.is_set():
        return

    async def run_job() -> None:
        async with open_services(config, earnings, guard=guard) as svc:
            await EarningsJob(svc.sync).run(stop)

    policy = RetryPolicy(
        attempts=None, base_s=startup_retry_s, cap_s=STARTUP_RETRY_CAP_S, jitter=0.0
    )
    try:
        await retry(
            run_job,
            policy,
            retryable=_startup_retryable,
            on_retry=_log_startup_failure,
            stop=stop,
        )
    except IngestionError as exc:
        if isinstance(exc, ConfigError) or not stop.is_set():
            raise
        # stopped while waiting to retry: the failure was logged, stopping is not an error


async def _stop_on_message(reader: ConnReader, stop: asyncio.Event) -> None:
    while True:
        msg = await reader.get()
        if msg is None or isinstance(msg, ipc.Stop):
            stop.set()
            return


async def _child(config: Config, conn: Connection, guard: Guard | None) -> None:
    logs.bind(role="earnings")
    stop = asyncio.Event()
    reader = ConnReader(conn, child=True)
    try:
        async with TaskSupervisor("earnings") as tasks:
            watcher = tasks.spawn("stop-watcher", _stop_on_message(reader, stop))
            try:
                await run_earnings(config, stop, guard=guard)
            except ConfigError as exc:
                log.error(
                    "earnings_fatal", extra={"error_kind": type(exc).__name__, "error": str(exc)}
                )
                ipc.send(conn, ipc.Fatal(message=str(exc)))
            finally:
                watcher.cancel()
    finally:
        reader.close()


def earnings_main(
    config: Config, conn: Connection, parent_pid: int, guard: Guard | None = None
) -> None:
    """Entry point of the forked earnings process (stops on ``ipc.Stop`` or pipe EOF)."""
    child_init(parent_pid, config, "ingest-earnings")
    run_loop(_child(config, conn, guard))
