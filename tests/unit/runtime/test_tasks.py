"""engine.runtime.tasks: a failing supervised task is logged, counted and propagated."""

from __future__ import annotations

import asyncio
import logging

import pytest

from engine.observe import metrics
from engine.runtime.tasks import TaskSupervisor, first_error


def failures(task: str) -> float:
    value = metrics.registry().get_sample_value("ingestion_task_failures_total", {"task": task})
    return value or 0.0


class TestTaskSupervisor:
    async def test_a_failing_task_cancels_its_siblings_and_propagates(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The error leaves the group; the sibling is cancelled; task_failed names the task."""
        before = failures("owner:boom")
        sibling_cancelled = asyncio.Event()

        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                sibling_cancelled.set()
                raise

        async def boom() -> None:
            await asyncio.sleep(0)
            raise RuntimeError("exploded")

        caplog.set_level(logging.ERROR, logger="engine.runtime.tasks")
        with pytest.raises(BaseExceptionGroup) as info:
            async with TaskSupervisor("owner") as tasks:
                tasks.spawn("forever", forever())
                tasks.spawn("boom", boom())
        assert isinstance(first_error(info.value), RuntimeError)
        assert sibling_cancelled.is_set()
        assert tasks.failed.is_set() and isinstance(tasks.error, RuntimeError)
        assert failures("owner:boom") == before + 1
        record = next(r for r in caplog.records if r.getMessage() == "task_failed")
        assert record.__dict__["task"] == "boom" and record.exc_info is not None

    async def test_the_owner_is_woken_by_a_failure(self) -> None:
        """The task that entered the supervisor is cancelled as soon as a task fails."""

        async def boom() -> None:
            raise ValueError("x")

        with pytest.raises(BaseExceptionGroup):
            async with TaskSupervisor("owner") as tasks:
                tasks.spawn("boom", boom())
                await asyncio.wait_for(asyncio.Event().wait(), 5)  # never set: woken by the failure

    async def test_clean_exit_waits_for_the_tasks(self) -> None:
        """Leaving the block waits for the tasks, whose results are kept."""
        async with TaskSupervisor("owner") as tasks:
            t = tasks.spawn("quick", asyncio.sleep(0, result=42))
        assert t.result() == 42

    async def test_spawn_outside_the_block_is_refused(self) -> None:
        """A supervisor that is not running starts nothing."""
        sup = TaskSupervisor("owner")
        with pytest.raises(RuntimeError, match="not running"):
            sup.spawn("late", asyncio.sleep(0))

    async def test_a_task_cancelled_before_it_starts_leaves_nothing_unawaited(self) -> None:
        """Cancelling a task before its first step closes its coroutine (no RuntimeWarning)."""
        async with TaskSupervisor("owner") as tasks:
            t = tasks.spawn("never", asyncio.sleep(3600))
            t.cancel()
        assert t.cancelled()
