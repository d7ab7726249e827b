"""engine.observe.http.server: lifecycle - the probe runs under a TaskSupervisor and stops with
the server."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from engine.observe.http.server import HttpServer
from engine.observe.http.status import CycleStatus, RateView
from engine.observe.quality import QualitySnapshot
from engine.source.breaker import BreakerState


class _Source:
    def recent_cycles(self) -> Sequence[CycleStatus]:
        return []

    def breaker_state(self) -> BreakerState:
        return BreakerState.CLOSED

    def rate_limit(self) -> RateView | None:
        return None

    def quality(self) -> QualitySnapshot | None:
        return None

    def refresh_metrics(self) -> None:
        return None


async def test_probe_runs_in_the_background_and_stops_with_the_server() -> None:
    runs = 0

    async def check(timeout_s: float) -> None:
        nonlocal runs
        runs += 1

    async with HttpServer("127.0.0.1", 0, _Source(), {"nats": check}, probe_interval_s=0.01) as s:
        assert s.port != 0
        for _ in range(100):
            if runs >= 2:
                break
            await asyncio.sleep(0.01)
        probe = [t for t in asyncio.all_tasks() if t.get_name() == "http:readiness-probe"]
        assert len(probe) == 1
    assert runs >= 2
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "http:readiness-probe"]


async def test_no_probe_without_checks_and_close_is_idempotent() -> None:
    server = HttpServer("127.0.0.1", 0, _Source(), {}, probe_interval_s=0.01)
    await server.start()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("http:")]
    await server.aclose()
    await server.aclose()
