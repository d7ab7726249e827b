"""Running the emulator: in the caller's event loop, in a background thread, or as a process.

* ``async with serve_emulator(cfg, port=0) as emu:`` - binds (port 0 = ephemeral), yields a
  :class:`RunningEmulator` (``.url``, ``.stream_url``, ``.stats()``, ``.configure(...)``,
  ``.expire_crumbs()``, ``.stream_fault(kind)``), and shuts the server down on exit.
* ``with EmulatorThread(cfg) as emu:`` - the same on a private event loop (uvloop) in a thread,
  for synchronous tests and tools (yfinance, curl_cffi). ``.stats()``/``.configure()`` hop to
  the emulator's loop and wait for the answer.
* ``yahoo-emulator`` (:mod:`.cli`) - a process; prints ``yahoo-emulator listening on URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from types import TracebackType
from typing import Any, Final, TypeVar

from aiohttp import web

from yahoo_emulator.app import build_app
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.state import Clock, Emulator
from yahoo_emulator.universe import Universe

T = TypeVar("T")

MAX_LINE: Final = 65_536  # let long quote URLs reach the 414 logic (aiohttp's default is 8190)


def format_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class RunningEmulator:
    """A bound emulator: its URL and a handle on its state (same event loop only)."""

    def __init__(self, emulator: Emulator, host: str, port: int) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self.url = format_url(host, port)

    def stats(self) -> dict[str, Any]:
        return self.emulator.snapshot()

    def configure(self, **changes: Any) -> EmulatorConfig:
        return self.emulator.configure(changes)

    def expire_crumbs(self) -> int:
        return self.emulator.auth.expire_all()

    @property
    def stream_url(self) -> str:
        """The streamer's URL (``wss://streamer.finance.yahoo.com/?version=2`` here)."""
        return "ws" + self.url.removeprefix("http") + "/?version=2"

    async def stream_fault(self, kind: str, count: int = 1) -> list[int]:
        """Strike up to ``count`` live streamer connections with fault ``kind`` now."""
        return await self.emulator.streamer.trigger(kind, count)

    @property
    def config(self) -> EmulatorConfig:
        return self.emulator.cfg


@contextlib.asynccontextmanager
async def serve_emulator(
    cfg: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock = time.time,
    universe: Universe | None = None,
) -> AsyncIterator[RunningEmulator]:
    """Serve an emulator on ``host:port`` for the duration of the ``async with`` block."""
    emu = Emulator(cfg, clock=clock, universe=universe)
    runner = web.AppRunner(
        build_app(emu),
        access_log=None,
        shutdown_timeout=2.0,
        max_line_size=MAX_LINE,
        max_field_size=MAX_LINE,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield RunningEmulator(emu, str(bound_host), int(bound_port))
    finally:
        await runner.cleanup()
        emu.close()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop (asyncio's default if uvloop is missing)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class EmulatorThread:
    """An emulator on its own event loop in a daemon thread; a context manager.

    ``start()`` returns once the socket is bound (``url`` is then valid) and re-raises a
    start-up failure; ``stop()`` shuts the server down and joins the thread (idempotent).
    """

    def __init__(
        self,
        cfg: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = time.time,
        universe: Universe | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        self._cfg = cfg
        self._host = host
        self._port = port
        self._clock = clock
        self._universe = universe
        self._timeout = start_timeout_s
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running: RunningEmulator | None = None
        self._error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EmulatorThread:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._main, name="yahoo-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError(f"emulator did not start within {self._timeout}s")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("emulator failed to start") from self._error
        return self

    def _main(self) -> None:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            try:
                runner.run(self._serve())
            except BaseException as exc:  # surfaced by start()
                self._error = exc
                self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve_emulator(
            self._cfg,
            host=self._host,
            port=self._port,
            clock=self._clock,
            universe=self._universe,
        ) as running:
            self._running = running
            self._ready.set()
            await self._stop.wait()

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already gone
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"emulator thread did not stop within {timeout}s")
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- access --------------------------------------------------------------------------------

    @property
    def running(self) -> RunningEmulator:
        if self._running is None:
            raise RuntimeError("emulator not started")
        return self._running

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def port(self) -> int:
        return self.running.port

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("emulator not started")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    def stats(self) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            return self.running.stats()

        return self._call(get())

    def configure(self, **changes: Any) -> EmulatorConfig:
        async def patch() -> EmulatorConfig:
            return self.running.configure(**changes)

        return self._call(patch())

    def expire_crumbs(self) -> int:
        async def expire() -> int:
            return self.running.expire_crumbs()

        return self._call(expire())

    @property
    def stream_url(self) -> str:
        return self.running.stream_url

    def stream_fault(self, kind: str, count: int = 1) -> list[int]:
        return self._call(self.running.stream_fault(kind, count))
