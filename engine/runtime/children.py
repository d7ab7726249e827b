"""The supervisor's children: fork them, read their control pipes, restart the dead, reap.

A child is forked with a duplex control pipe; a supervised reader task per child hands each
control message to the host (the supervisor) and, at end-of-pipe, reaps the process. A child that
dies unexpectedly is restarted after an exponential backoff (``workers.restart_backoff_s``
doubled per quick restart, capped at :data:`MAX_RESTART_BACKOFF_S`; a child that ran for
:data:`QUICK_EXIT_S` or more starts the count again). Once the engine is stopping nothing is
restarted (a child started then could outlive the engine): a publisher that dies during the
shutdown leaves what the rings still hold, counted as ``shutdown_left_unpublished``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import ForkProcess
from typing import Any, Final, Protocol

from engine.observe import metrics
from engine.retry import backoff_s
from engine.runtime import ipc
from engine.runtime.child import ConnReader
from engine.runtime.tasks import TaskSupervisor

log = logging.getLogger(__name__)

MAX_RESTART_BACKOFF_S: Final = 30.0
QUICK_EXIT_S: Final = 10.0
"""A child that dies sooner than this after its start counts as a quick restart."""
REAP_S: Final = 2.0
"""How long a killed child is given to be reaped."""

_ctx = mp.get_context("fork")

Entry = tuple[Callable[..., None], tuple[Any, ...]]
"""A child's entry point and its arguments."""


def restart_delay_s(restarts: int, base_s: float) -> float:
    """Seconds before restarting a child after ``restarts`` quick restarts in a row."""
    return backoff_s(restarts, base_s=base_s, cap_s=MAX_RESTART_BACKOFF_S, jitter=0.0)


class Child:
    """One child process slot: the process it runs now, its pipe and its restart count."""

    def __init__(self, kind: metrics.ChildKind, index: int) -> None:
        self.kind = kind
        self.index = index
        self.proc: ForkProcess | None = None
        self.conn: Connection | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.restarts = 0
        self.started_at = 0.0

    @property
    def name(self) -> str:
        return self.kind if self.kind != "worker" else f"worker-{self.index}"

    def send(self, msg: ipc.Message) -> None:
        """Send ``msg`` if the child is there (a child that just died misses it)."""
        if self.conn is not None:
            with contextlib.suppress(OSError):
                ipc.send(self.conn, msg)


class ChildHost(Protocol):
    """What :class:`Children` asks of the supervisor."""

    stopping: asyncio.Event
    fatal: str | None

    def entry(self, child: Child, conn: Connection) -> Entry:
        """The entry point and arguments of ``child``, whose end of the pipe is ``conn``."""
        ...

    def on_started(self, child: Child) -> None: ...

    def on_message(self, child: Child, msg: ipc.Message) -> None: ...

    def on_died(self, child: Child) -> None:
        """``child`` died unexpectedly (before it is restarted)."""
        ...


class Children:
    """Starts, watches, restarts and reaps the children of one host."""

    def __init__(self, host: ChildHost, tasks: TaskSupervisor, *, restart_backoff_s: float) -> None:
        self.host = host
        self.tasks = tasks
        self.restart_backoff_s = restart_backoff_s
        self._readers: set[asyncio.Task[None]] = set()

    def spawn(self, child: Child) -> None:
        parent_conn, child_conn = _ctx.Pipe(duplex=True)
        target, args = self.host.entry(child, child_conn)
        proc = _ctx.Process(target=target, args=args, name=f"ingest-{child.name}", daemon=False)
        proc.start()
        child_conn.close()
        child.proc, child.conn = proc, parent_conn
        child.ready.clear()
        child.started_at = time.monotonic()
        task = self.tasks.spawn(f"read-{child.name}", self._read(child, parent_conn, proc))
        child.reader_task = task
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)
        log.info("child_started", extra={"child": child.name, "pid": proc.pid})
        self.host.on_started(child)

    async def _read(self, child: Child, conn: Connection, proc: ForkProcess) -> None:
        reader = ConnReader(conn)
        try:
            while True:
                msg = await reader.get()
                if msg is None:
                    break
                self.host.on_message(child, msg)
        finally:
            reader.close()
        await asyncio.get_running_loop().run_in_executor(None, proc.join, 5.0)
        if proc.is_alive():  # EOF without exit: should not happen
            proc.kill()
        await self._on_exit(child, proc)

    async def _on_exit(self, child: Child, proc: ForkProcess) -> None:
        code = proc.exitcode
        child.proc = None
        if proc.pid is not None:
            metrics.mark_process_dead(proc.pid)
        if child.conn is not None:
            child.conn.close()
            child.conn = None
        stopping = self.host.stopping.is_set()
        if (stopping and code == 0) or self.host.fatal:
            log.info("child_exited", extra={"child": child.name, "exit_code": code})
            return
        log.error("child_died", extra={"child": child.name, "exit_code": code})
        self.host.on_died(child)
        if stopping:  # nothing is restarted once the shutdown began: it could outlive the engine
            return
        quick = time.monotonic() - child.started_at < QUICK_EXIT_S
        child.restarts = child.restarts + 1 if quick else 0
        await asyncio.sleep(restart_delay_s(child.restarts, self.restart_backoff_s))
        if not self.host.stopping.is_set():
            metrics.record_child_restart(child.kind)
            self.spawn(child)

    async def join(
        self, children: Sequence[Child], timeout_s: float, *, reap_s: float = REAP_S
    ) -> None:
        """Wait for ``children`` to exit; kill those still running after ``timeout_s`` and give
        the kill up to ``reap_s``."""
        tasks = [c.reader_task for c in children if c.reader_task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, timeout_s))
        for c in children:
            if c.proc is not None and c.proc.is_alive() and c.reader_task in pending:
                log.error("child_kill", extra={"child": c.name, "timeout_s": round(timeout_s, 2)})
                c.proc.kill()
        if pending:
            await asyncio.wait(pending, timeout=reap_s)

    def cancel(self, children: Sequence[Child] = ()) -> None:
        """Stop reading every child (the engine is exiting: the children were joined); kill and
        reap any of ``children`` still running, so that no child outlives the engine."""
        for task in list(self._readers):
            task.cancel()
        for c in children:
            proc = c.proc
            if proc is not None and proc.is_alive():
                log.error("child_kill", extra={"child": c.name, "timeout_s": 0})
                proc.kill()
                proc.join(REAP_S)
