"""The store's periodic partition maintenance loop (the SQL is tested against PostgreSQL)."""

from __future__ import annotations

import logging

import pytest

from engine.errors import StoreError
from engine.sinks.store.maintenance import maintain_periodically


async def test_runs_when_due_survives_failures_and_stops() -> None:
    slept: list[float] = []
    ran: list[int] = []
    due = [False, True, True, True]

    async def sleep(s: float) -> None:
        slept.append(s)

    async def maintain() -> None:
        ran.append(len(slept))
        if len(ran) == 1:
            raise StoreError("partition DDL failed")

    def stopped() -> bool:
        return len(slept) >= len(due)

    await maintain_periodically(
        maintain, 60.0, due=lambda: due[len(slept) - 1], stopped=stopped, sleep=sleep
    )
    assert slept == [60.0] * 4
    assert ran == [2, 3, 4]  # not while not due; a failure is retried at the next interval


async def test_a_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def sleep(s: float) -> None:
        nonlocal calls
        calls += 1

    async def maintain() -> None:
        raise StoreError("no")

    with caplog.at_level(logging.WARNING):
        await maintain_periodically(
            maintain, 1.0, due=lambda: True, stopped=lambda: calls >= 1, sleep=sleep
        )
    assert [r.getMessage() for r in caplog.records] == ["partition_maintenance_failed"]
