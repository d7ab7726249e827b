"""Readiness: the checks behind ``/readyz`` and the background probe.

``/readyz`` is ready only if NATS (a round trip and JetStream's account info), PostgreSQL
(``SELECT 1``) and Redis (``PING``) answer within ``check_timeout_s`` each, and the Yahoo
circuit breaker is not open. Each result is ``ok`` (with the latency), ``fail`` (with the
exception's class name or ``timeout``: never a message, which could quote a DSN), or
``skipped`` for a dependency disabled in the configuration. Each check opens a short-lived
connection of its own through :mod:`engine.deps` (the engine's pooled connections live in the
publisher process). Concurrent callers share one run; the server also runs the checks every
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
from typing import Any, Final, Literal, NamedTuple

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


async def run_check(check: Check, timeout_s: float, clock: Callable[[], float]) -> CheckResult:
    """Run one check under ``timeout_s``; failures become a class name, never a message."""
    t0 = clock()
    try:
        await asyncio.wait_for(check(timeout_s), timeout_s)
    except TimeoutError:
        return CheckResult("fail", error="timeout")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # any failure of a probe means "not ready"
        return CheckResult("fail", error=type(exc).__name__)
    return CheckResult("ok", latency_ms=(clock() - t0) * 1000.0)


def breaker_result(state: BreakerState) -> CheckResult:
    """The circuit breaker as a check: it fails while the breaker is open."""
    status: CheckStatus = "fail" if state is BreakerState.OPEN else "ok"
    return CheckResult(status, detail=metrics.breaker_name(state))


def nats_check(settings: NatsSettings) -> Check:
    """Connect (no reconnects), one round trip, JetStream account info, close."""

    async def check(timeout_s: float) -> None:
        await nats_dep.probe(settings, timeout_s)

    return check


def postgres_check(settings: PostgresSettings) -> Check:
    """Connect, ``SELECT 1``, close."""

    async def check(timeout_s: float) -> None:
        conn = await asyncio.wait_for(
            postgres_dep.connect(settings, purpose="readyz"), timeout=timeout_s
        )
        try:
            await postgres_dep.ping(conn, timeout_s)
        finally:
            await conn.close(timeout=timeout_s)

    return check


def redis_check(settings: RedisSettings) -> Check:
    """Connect, ``PING``, close."""

    async def check(timeout_s: float) -> None:
        client = redis_dep.client(settings, timeout_s=timeout_s)
        try:
            await redis_dep.ping(client)
        finally:
            await client.aclose()

    return check


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
