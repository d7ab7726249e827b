"""Children: the restart backoff, and a child that dies being reaped and restarted."""

from __future__ import annotations

import asyncio
import sys
import time
from multiprocessing.connection import Connection

import pytest

from engine.runtime import ipc
from engine.runtime.children import MAX_RESTART_BACKOFF_S, Child, Children, Entry, restart_delay_s
from engine.runtime.tasks import TaskSupervisor


def test_restart_backoff_doubles_per_quick_restart_up_to_the_cap() -> None:
    assert [restart_delay_s(n, 1.0) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert restart_delay_s(10, 1.0) == MAX_RESTART_BACKOFF_S
    assert restart_delay_s(2, 0.0) == 0.0


def _die(code: int) -> None:
    sys.exit(code)


def _serve(conn: Connection) -> None:
    """Answer ready, then exit cleanly once told to stop."""
    ipc.send(conn, ipc.WorkerReady(worker=0, pid=0))
    while not isinstance(ipc.recv(conn), ipc.Stop):
        pass


class Host:
    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.fatal: str | None = None
        self.started = 0
        self.died: list[str] = []
        self.messages: list[ipc.Message] = []
        self.answered = asyncio.Event()

    def entry(self, child: Child, conn: Connection) -> Entry:
        if self.started == 0:
            return _die, (3,)
        return _serve, (conn,)

    def on_started(self, child: Child) -> None:
        self.started += 1

    def on_message(self, child: Child, msg: ipc.Message) -> None:
        self.messages.append(msg)
        self.answered.set()

    def on_died(self, child: Child) -> None:
        self.died.append(child.name)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (pytest's own)
async def test_a_dead_child_is_restarted_after_its_backoff() -> None:
    host = Host()
    child = Child("worker", 0)
    async with TaskSupervisor("test") as tasks:
        children = Children(host, tasks, restart_backoff_s=0.01)
        children.spawn(child)
        await asyncio.wait_for(host.answered.wait(), timeout=10.0)  # the restarted child
        assert host.started == 2
        assert host.died == ["worker-0"]
        assert child.restarts == 1  # it died at once: a quick restart
        assert isinstance(host.messages[0], ipc.WorkerReady)
        host.stopping.set()
        child.send(ipc.Stop(grace_s=1.0))
        await children.join([child], 10.0)
    assert child.proc is None and child.conn is None
    assert host.started == 2  # a clean exit while stopping is not restarted


class KillHost(Host):
    """Its child dies (exit 3) while the engine is stopping."""

    def entry(self, child: Child, conn: Connection) -> Entry:
        return _die, (3,)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (pytest's own)
async def test_a_child_dying_while_stopping_is_not_restarted() -> None:
    """A publisher respawned during the shutdown would outlive the engine (an orphan)."""
    host = KillHost()
    host.stopping.set()
    child = Child("publisher", 0)
    async with TaskSupervisor("test") as tasks:
        children = Children(host, tasks, restart_backoff_s=0.01)
        children.spawn(child)
        await children.join([child], 10.0)
        await asyncio.sleep(0.1)  # a restart would have been spawned by now
        children.cancel([child])
    assert host.died == ["publisher"]
    assert host.started == 1
    assert child.proc is None


def _hang(conn: Connection) -> None:
    """Never answer, never exit (until killed)."""
    while True:
        time.sleep(1)


class HangHost(Host):
    def entry(self, child: Child, conn: Connection) -> Entry:
        return _hang, (conn,)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (pytest's own)
async def test_cancel_kills_every_child_still_running() -> None:
    host = HangHost()
    child = Child("worker", 0)
    async with TaskSupervisor("test") as tasks:
        children = Children(host, tasks, restart_backoff_s=0.01)
        children.spawn(child)
        proc = child.proc
        assert proc is not None and proc.is_alive()
        host.stopping.set()
        children.cancel([child])
    assert not proc.is_alive()
