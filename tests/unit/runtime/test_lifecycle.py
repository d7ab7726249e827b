"""AsyncResource and BackgroundTasks: the sinks' start/aclose and supervised tasks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.runtime.lifecycle import AsyncResource, BackgroundTasks
from engine.sinks.durable import fsync_dir


class Resource(AsyncResource):
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def aclose(self) -> None:
        self.calls.append("aclose")


async def test_async_with_starts_and_closes() -> None:
    r = Resource()
    async with r as entered:
        assert entered is r
    assert r.calls == ["start", "aclose"]


async def test_loops_are_cancelled_helpers_awaited() -> None:
    tasks = BackgroundTasks("test")
    helper_done = asyncio.Event()
    loop_cancelled = False

    async def forever() -> None:
        nonlocal loop_cancelled
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            loop_cancelled = True
            raise

    async def helper() -> None:
        await asyncio.sleep(0.01)
        helper_done.set()

    await tasks.start()
    assert tasks.running
    tasks.loop("forever", forever())
    tasks.spawn("helper", helper())
    await tasks.stop()
    assert loop_cancelled and helper_done.is_set() and not tasks.running
    await tasks.stop()  # idempotent


async def test_a_loop_stopped_before_it_ran_leaves_no_unawaited_coroutine() -> None:
    tasks = BackgroundTasks("test")
    ran = False

    async def loop() -> None:
        nonlocal ran
        ran = True
        await asyncio.Event().wait()

    await tasks.start()
    tasks.loop("loop", loop())
    await tasks.stop()
    assert ran


async def test_spawn_needs_a_started_supervisor() -> None:
    tasks = BackgroundTasks("test")

    async def nothing() -> None:
        return None

    with pytest.raises(RuntimeError):
        tasks.spawn("x", nothing())


def test_fsync_dir(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "missing")
