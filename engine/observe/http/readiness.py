"""Readiness: the checks behind ``/readyz`` and the background probe.

``/readyz`` is ready only if NATS (a round trip, JetStream's account info, and the quote
and DLQ streams exist: the publisher re-creates a missing one, and until it has, nothing is
stored, so a fresh engine is not ready for that moment), PostgreSQL (``SELECT 1``) and
Redis (``PING``) answer within ``check_timeout_s`` each, and the Yahoo circuit breaker is not
open. Each result is ``ok`` (with the latency), ``fail`` (with the
exception's class name or ``timeout``: never a message, which could quote a DSN; a
:class:`CheckFailed` adds its own safe ``detail``, e.g. the missing stream), or
``skipped`` for a dependency disabled in the configuration. Each check keeps one connection of
its own open (:class:`KeptConnection`, made through :mod:`engine.deps`; the engine's pooled
connections live in the publisher process): a call costs a round trip, not a connection; a
failed connection is dropped and the next check opens a new one; all are closed on shutdown.
Concurrent callers share one run; the server also runs the checks every
``probe_interval_s`` by itself (:meth:`Readiness.probe_forever`), so ``ingestion_dependency_up``
stays current without an orchestrator probing. A dependency changing state is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, NamedTuple, TypeVar

import redis.asyncio as aioredis

from engine.config import Config, NatsSettings, PostgresSettings, RedisSettings
from engine.deps import nats as nats_dep
from engine.deps import postgres as postgres_dep
from engine.deps import redis as redis_dep
from engine.observe import metrics
from engine.source.breaker import BreakerState

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S: Final = 2.0
PROBE_INTERVAL_S: Final = 15.0

Check = Callable[[float], Awaitable[None]]
"""A readiness check: returns if the dependency answered, raises otherwise; the argument is the
time it may take (the server also enforces it)."""

CheckStatus = Literal["ok", "fail", "skipped"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome, as ``/readyz`` reports it (:meth:`doc`)."""

    status: CheckStatus
    latency_ms: float | None = None
    error: str | None = None
    detail: str | None = None

    def doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.latency_ms is not None:
            out["latency_ms"] = round(self.latency_ms, 2)
        if self.error is not None:
            out["error"] = self.error
        if self.detail is not None:
            out["detail"] = self.detail
        return out


class CheckFailed(Exception):
    """A dependency that answered but is not usable; ``detail`` is safe to show (no secrets).
    The kept connection stays open: it works."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class StreamMissing(CheckFailed):
    """JetStream answers but a stream the engine publishes to does not exist."""

    def __init__(self, streams: list[str]) -> None:
        super().__init__(f"stream {', '.join(streams)} does not exist")
        self.streams = streams


async def run_check(check: Check, timeout_s: float, clock: Callable[[], float]) -> CheckResult:
    """Run one check under ``timeout_s``; failures become a class name, never a message."""
    t0 = clock()
    try:
        await asyncio.wait_for(check(timeout_s), timeout_s)
    except TimeoutError:
        return CheckResult("fail", error="timeout")
    except asyncio.CancelledError:
        raise
    except CheckFailed as exc:
        return CheckResult("fail", error=type(exc).__name__, detail=exc.detail)
    except Exception as exc:  # any failure of a probe means "not ready"
        return CheckResult("fail", error=type(exc).__name__)
    return CheckResult("ok", latency_ms=(clock() - t0) * 1000.0)


def breaker_result(state: BreakerState) -> CheckResult:
    """The circuit breaker as a check: it fails while the breaker is open."""
    status: CheckStatus = "fail" if state is BreakerState.OPEN else "ok"
    return CheckResult(status, detail=metrics.breaker_name(state))


C = TypeVar("C")


class KeptConnection(Generic[C]):
    """A check on one connection kept open between checks: opened on first use, checked
    (``is_live`` and ``ping``) on every call, dropped on any failure so the next call opens a new
    one, closed by :meth:`aclose`. ``/readyz`` thus costs a round trip, not a connection."""

    def __init__(
        self,
        name: str,
        open_: Callable[[float], Awaitable[C]],
        ping: Callable[[C, float], Awaitable[None]],
        close: Callable[[C], Awaitable[None]],
        is_live: Callable[[C], bool] = lambda _c: True,
    ) -> None:
        self.name = name
        self._open = open_
        self._ping = ping
        self._close = close
        self._is_live = is_live
        self._conn: C | None = None
        self._dropped: list[C] = []
        self.opened = 0
        """Connections opened so far (one unless the dependency failed)."""

    async def __call__(self, timeout_s: float) -> None:
        if self._conn is not None and not self._is_live(self._conn):
            self._drop()
        await self._close_dropped()
        conn = self._conn
        if conn is None:
            conn = await asyncio.wait_for(self._open(timeout_s), timeout_s)
            self.opened += 1
            self._conn = conn
        try:
            await self._ping(conn, timeout_s)
        except CheckFailed:  # the connection works: keep it
            raise
        except BaseException:  # timeout, cancellation, a broken connection: open anew next time
            self._drop()
            raise

    def _drop(self) -> None:
        """Forget the connection; it is closed before the next use (never here: this may run
        in a cancelled task)."""
        if self._conn is not None:
            self._dropped.append(self._conn)
            self._conn = None

    async def _close_dropped(self) -> None:
        dropped, self._dropped = self._dropped, []
        for conn in dropped:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._close(conn), CHECK_TIMEOUT_S)

    async def aclose(self) -> None:
        """Close the kept connection (idempotent)."""
        self._drop()
        await self._close_dropped()


def nats_check(settings: NatsSettings) -> KeptConnection[Any]:
    """One connection without reconnects, kept; each check: a round trip, JetStream's account
    info, and the quote and DLQ streams exist (:class:`StreamMissing` names those that do not)."""

    async def check(nc: Any, timeout_s: float) -> None:
        await nats_dep.ping(nc, timeout_s)
        js = nc.jetstream(timeout=timeout_s)
        missing = [
            name
            for name in (settings.stream, settings.dlq_stream)
            if not await nats_dep.stream_exists(js, name)
        ]
        if missing:
            raise StreamMissing(missing)

    async def close(nc: Any) -> None:
        await nc.close()

    return KeptConnection(
        "nats",
        lambda t: nats_dep.probe_connection(settings, t),
        check,
        close,
        is_live=lambda nc: bool(nc.is_connected),
    )


def postgres_check(settings: PostgresSettings) -> KeptConnection[Any]:
    """One connection (``application_name`` ingestion-agent:readyz), kept; each check:
    ``SELECT 1``."""

    async def close(conn: Any) -> None:
        await conn.close(timeout=CHECK_TIMEOUT_S)

    return KeptConnection(
        "postgres",
        lambda _t: postgres_dep.connect(settings, purpose="readyz"),
        postgres_dep.ping,
        close,
        is_live=lambda conn: not conn.is_closed(),
    )


def redis_check(settings: RedisSettings) -> KeptConnection[aioredis.Redis]:
    """One client (its connection reused), kept; each check: ``PING``."""

    async def open_(timeout_s: float) -> aioredis.Redis:
        return redis_dep.client(settings, timeout_s=timeout_s)

    async def ping(client: aioredis.Redis, _timeout_s: float) -> None:
        await redis_dep.ping(client)

    async def close(client: aioredis.Redis) -> None:
        await client.aclose()

    return KeptConnection("redis", open_, ping, close)


def default_checks(config: Config) -> dict[str, Check | None]:
    """NATS, PostgreSQL and Redis per the configuration (None = disabled: reported skipped)."""
    return {
        "nats": nats_check(config.nats),
        "postgres": postgres_check(config.postgres) if config.postgres.enabled else None,
        "redis": redis_check(config.redis) if config.redis.enabled else None,
    }


class ReadinessReport(NamedTuple):
    """One run of the checks."""

    ready: bool
    """No check failed."""
    doc: dict[str, Any]
    """The ``/readyz`` document: the overall status and one entry per check."""


class Readiness:
    """Runs the checks: one run at a time (concurrent callers share it), state changes logged
    once, ``ingestion_dependency_up`` set after each run."""

    def __init__(
        self,
        checks: Mapping[str, Check | None],
        breaker_state: Callable[[], BreakerState],
        check_timeout_s: float = CHECK_TIMEOUT_S,
    ) -> None:
        self.checks = dict(checks)
        self.check_timeout_s = check_timeout_s
        self._breaker_state = breaker_state
        # The shared run: a short-lived task (one pass over the checks) that concurrent
        # callers await behind a shield, so one caller going away does not cancel the others.
        self._run: asyncio.Task[ReadinessReport] | None = None
        self._last_status: dict[str, str] = {}

    async def run(self) -> ReadinessReport:
        """Run every check (one run at a time: concurrent probes share it)."""
        task = self._run
        if task is None or task.done():
            task = self._run = asyncio.create_task(self._check_all())
        return await asyncio.shield(task)

    async def probe_forever(self, interval_s: float) -> None:
        """The background probe: a run every ``interval_s``; a failing run is logged."""
        while True:
            try:
                await self.run()
            except Exception:  # never let the background probe die
                log.exception("readiness_probe_failed")
            await asyncio.sleep(interval_s)

    async def cancel(self) -> None:
        """Cancel a run in progress (server shutdown)."""
        task, self._run = self._run, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def aclose(self) -> None:
        """Cancel a run in progress and close the connections the checks keep (shutdown)."""
        await self.cancel()
        for check in self.checks.values():
            closer = getattr(check, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    async def _check_all(self) -> ReadinessReport:
        names = list(self.checks)
        runs = [
            run_check(c, self.check_timeout_s, time.perf_counter)
            for c in self.checks.values()
            if c is not None
        ]
        done = iter(await asyncio.gather(*runs))
        results: dict[str, CheckResult] = {}
        for name in names:
            if self.checks[name] is None:
                results[name] = CheckResult("skipped", detail="disabled")
            else:
                results[name] = next(done)
        results["breaker"] = breaker_result(self._breaker_state())
        self._note(results)
        ready = all(r.status != "fail" for r in results.values())
        doc = {
            "status": "ready" if ready else "not_ready",
            "checks": {k: r.doc() for k, r in results.items()},
        }
        return ReadinessReport(ready, doc)

    def _note(self, results: Mapping[str, CheckResult]) -> None:
        for name, r in results.items():
            if r.status != "skipped" and name != "breaker":
                metrics.set_dependency_up(name, r.status == "ok")
            before = self._last_status.get(name)
            self._last_status[name] = r.status
            if before is not None and before != r.status:
                level = logging.INFO if r.status == "ok" else logging.WARNING
                log.log(
                    level,
                    "readiness_changed",
                    extra={
                        "check": name,
                        "status": r.status,
                        "error_kind": r.error,
                        "detail": r.detail,
                    },
                )
