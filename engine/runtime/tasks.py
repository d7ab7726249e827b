"""Supervised long-lived tasks: an :class:`asyncio.TaskGroup` whose failures are never silent.

Every long-lived task of the engine (a writer, a drain loop, a reader, a probe) runs under a
:class:`TaskSupervisor`. A task that raises is logged (``task_failed`` with its name and owner,
traceback included) and counted (``ingestion_task_failures_total{task}``), then the error
propagates the way :class:`asyncio.TaskGroup` propagates it: the sibling tasks are cancelled, the
task that entered the supervisor is cancelled, and leaving the ``async with`` raises an
:class:`ExceptionGroup` holding the error. Nothing dies unobserved.

Use it where the owner's own lifetime is the tasks' lifetime::

    async with TaskSupervisor("publisher") as tasks:
        tasks.spawn("drain-0", drain(0))
        tasks.spawn("committer", committer())

or inside a component that is an async context manager: enter it in ``__aenter__`` and leave it
in ``__aexit__`` (the same task must do both, which :class:`contextlib.AsyncExitStack` ensures).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from engine.observe import metrics

T = TypeVar("T")

log = logging.getLogger(__name__)


def first_error(exc: BaseException) -> BaseException:
    """The first leaf of an :class:`ExceptionGroup` (or ``exc`` itself): what to report."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class TaskSupervisor:
    """A named :class:`asyncio.TaskGroup` that logs and counts every task that fails."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._group: asyncio.TaskGroup | None = None
        self._failed: asyncio.Event = asyncio.Event()
        self.error: BaseException | None = None
        """The first failure of a supervised task, once one failed."""

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise RuntimeError(f"task supervisor {self.owner!r} entered twice")
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        group, self._group = self._group, None
        if group is None:
            return None
        await group.__aexit__(exc_type, exc, tb)
        return None

    @property
    def failed(self) -> asyncio.Event:
        """Set as soon as a supervised task fails (before the group unwinds)."""
        return self._failed

    def spawn(self, name: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` as task ``name`` under this supervisor."""
        if self._group is None:
            coro.close()
            raise RuntimeError(
                f"task supervisor {self.owner!r} is not running: cannot start {name}"
            )
        # the coroutine itself is the task (no wrapper that a cancel before its first step would
        # leave un-awaited); its failure is reported by a done-callback
        task = self._group.create_task(coro, name=f"{self.owner}:{name}")
        task.add_done_callback(lambda t: self._report(name, t))
        return task

    def _report(self, name: str, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if self.error is None:
            self.error = exc
        self._failed.set()
        log.error(
            "task_failed",
            exc_info=exc,
            extra={"task": name, "owner": self.owner, "error_kind": type(exc).__name__},
        )
        metrics.record_task_failure(f"{self.owner}:{name}")
