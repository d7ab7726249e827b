"""The earnings process's start-up: connection failures retried with backoff until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.config import EarningsSettings, load_config
from engine.earnings import process
from engine.errors import ConfigError, IngestionError, StoreError


def failing_services(errors: list[IngestionError], calls: list[int], stop: asyncio.Event) -> Any:
    @contextlib.asynccontextmanager
    async def open_services(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        calls.append(1)
        if len(calls) >= len(errors):
            stop.set()
        raise errors[min(len(calls), len(errors)) - 1]
        yield  # pragma: no cover

    return open_services


async def test_startup_failures_are_retried_until_stopped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stop, calls = asyncio.Event(), []
    errors: list[IngestionError] = [StoreError("down")] * 3
    monkeypatch.setattr(process, "open_services", failing_services(errors, calls, stop))
    with caplog.at_level(logging.ERROR, logger=process.__name__):
        await process.run_earnings(
            load_config(None, environ={}), stop, settings=EarningsSettings(), startup_retry_s=0.001
        )
    assert len(calls) == 3
    delays = [r.retry_in_s for r in caplog.records if r.getMessage() == "earnings_startup_failed"]  # type: ignore[attr-defined]
    assert delays == [0.001, 0.002]


async def test_a_config_error_stops_the_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    stop, calls = asyncio.Event(), []
    errors: list[IngestionError] = [ConfigError("no postgres", key="earnings.enabled")] * 5
    monkeypatch.setattr(process, "open_services", failing_services(errors, calls, asyncio.Event()))
    with pytest.raises(ConfigError):
        await process.run_earnings(load_config(None, environ={}), stop, settings=EarningsSettings())
    assert len(calls) == 1


async def test_disabled_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(process, "open_services", failing_services([], calls, asyncio.Event()))
    settings = EarningsSettings(enabled=False)
    await process.run_earnings(load_config(None, environ={}), asyncio.Event(), settings=settings)
    assert not calls
