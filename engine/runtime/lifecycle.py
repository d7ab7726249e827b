"""What every owner of a connection shares: ``async with`` = start ... aclose, and its
supervised background tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Self

from engine.runtime.tasks import TaskSupervisor


class AsyncResource:
    """``async with x`` awaits ``x.start()`` and, on the way out, ``x.aclose()``.

    ``start`` is a no-op by default (an owner that connects lazily); ``aclose`` must be
    idempotent.
    """

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class BackgroundTasks:
    """A sink's long-lived loops and short-lived helpers, under one :class:`TaskSupervisor`.

    :meth:`start` and :meth:`stop` must run in the same task (the owner's start and aclose).
    """

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._supervisor: TaskSupervisor | None = None
        self._loops: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return self._supervisor is not None

    async def start(self) -> None:
        supervisor = TaskSupervisor(self._owner)
        await supervisor.__aenter__()
        self._supervisor = supervisor

    def loop(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run a loop until :meth:`stop` cancels it."""
        self._loops.append(self.spawn(name, coro))

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a helper task that :meth:`stop` waits for (not cancelled)."""
        if self._supervisor is None:
            coro.close()
            raise RuntimeError(f"{self._owner}: background tasks are not running")
        return self._supervisor.spawn(name, coro)

    async def stop(self) -> None:
        """Cancel the loops, wait for every task (idempotent)."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is None:
            return
        # one turn of the event loop first, so a loop started just now runs up to its first
        # await and its cancellation handling (a final flush, a log line) runs too
        await asyncio.sleep(0)
        for task in self._loops:
            task.cancel()
        self._loops.clear()
        await supervisor.__aexit__(None, None, None)
