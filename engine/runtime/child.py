"""Process plumbing shared by the supervisor's children: start-up, event loop, control pipe."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from collections.abc import Coroutine
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from engine.config import Config
from engine.observe import logs
from engine.runtime import ipc

log = logging.getLogger(__name__)

PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1
ORPHAN_SIGNAL = signal.SIGUSR1
"""Sent by the kernel to a child when the supervisor dies (PR_SET_PDEATHSIG): the child's
:class:`ConnReader` then reports end-of-pipe, so the child shuts down as on ``Stop`` (the
control pipe alone may never reach EOF: later children inherit its other end)."""


def _prctl(option: int, arg: int | bytes) -> None:
    # the interpreter's own symbols hold libc's prctl: no ctypes.util.find_library, which runs
    # ldconfig in a subprocess (a fork of this process) every time it is asked
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, arg, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def child_init(parent_pid: int, config: Config, name: str) -> None:
    """Run first in every forked child.

    * SIGINT/SIGTERM are ignored: the supervisor coordinates shutdown through the control pipe
      (a Ctrl-C in a terminal reaches the whole process group; only the supervisor acts on it).
    * If the supervisor dies, the kernel sends :data:`ORPHAN_SIGNAL` (PR_SET_PDEATHSIG), which
      the child's :class:`ConnReader` turns into end-of-pipe: the child shuts down on its own
      (a publisher still drains what the rings hold). Before the reader exists the signal's
      default action ends the child at once.
    """
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _prctl(PR_SET_PDEATHSIG, int(ORPHAN_SIGNAL))
    _prctl(PR_SET_NAME, name.encode()[:15])
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)
    logs.setup(config.log.level, config.log.format)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on a fresh uvloop event loop (never the parent's, which fork copied)."""
    asyncio.set_event_loop_policy(None)
    uvloop.run(main)


class ConnReader:
    """Await control messages from a pipe without blocking the loop (``add_reader``)."""

    def __init__(self, conn: Connection, *, child: bool = False) -> None:
        """``child``: this is a forked child's pipe to the supervisor; the supervisor's death
        (:data:`ORPHAN_SIGNAL`) reads as end-of-pipe."""
        self._conn = conn
        self._queue: asyncio.Queue[ipc.Message | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)
        # uvloop (libuv) makes a watched descriptor non-blocking; a message larger than the
        # socket buffer (an Assign of 50,000 symbols) then arrives in pieces and a read of the
        # rest would fail half-way (and a send from this end would write half a message).
        # Blocking again: a read waits for the rest of a message its sender is writing.
        os.set_blocking(conn.fileno(), True)
        self._eof = False
        if child:
            self._loop.add_signal_handler(ORPHAN_SIGNAL, self._orphaned)

    def _orphaned(self) -> None:
        log.error("supervisor_gone", extra={"action": "shutting down"})
        if not self._eof:
            self.close()
            self._queue.put_nowait(None)

    def _readable(self) -> None:
        try:
            while self._conn.poll():
                self._queue.put_nowait(ipc.recv(self._conn))
        except (EOFError, OSError):
            self._eof = True
            self._loop.remove_reader(self._conn.fileno())
            self._queue.put_nowait(None)

    async def get(self) -> ipc.Message | None:
        """The next message, or None once the other end has closed."""
        return await self._queue.get()

    def close(self) -> None:
        if not self._eof:
            self._eof = True
            self._loop.remove_reader(self._conn.fileno())
