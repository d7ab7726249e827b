"""The HTTP server: the aiohttp application, its routes and its lifecycle.

``async with HttpServer.serve(config, source) as http`` (or ``async with HttpServer(...)``)
listens, runs the background readiness probe under a :class:`~engine.runtime.tasks.
TaskSupervisor`, and on leaving cancels the probe, waits for it and stops listening.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import orjson
from aiohttp import web
from prometheus_client.exposition import choose_encoder

from engine import __version__
from engine.config import Config
from engine.errors import ConfigError
from engine.observe import metrics as m
from engine.observe.http.liveness import LivenessMonitor, LivenessReport, Progress
from engine.observe.http.page import render_status
from engine.observe.http.readiness import (
    CHECK_TIMEOUT_S,
    PROBE_INTERVAL_S,
    Check,
    Readiness,
    ReadinessReport,
    default_checks,
)
from engine.observe.http.status import StatusSource, StatusView, status_doc
from engine.runtime.lifecycle import AsyncResource
from engine.runtime.tasks import TaskSupervisor

log = logging.getLogger(__name__)

STALL_AFTER_S: Final = 60.0
"""``http.stall_after_s`` default, for servers built without a configuration."""
LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})

_SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_PAGE_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


class HttpServer(AsyncResource):
    """The endpoint. ``async with HttpServer.serve(config, source) as http: ...``"""

    def __init__(
        self,
        host: str,
        port: int,
        source: StatusSource,
        checks: Mapping[str, Check | None],
        *,
        check_timeout_s: float = CHECK_TIMEOUT_S,
        probe_interval_s: float | None = PROBE_INTERVAL_S,
        clock: Callable[[], float] = time.time,
        progress: Callable[[], Progress] | None = None,
        stall_after_s: float = STALL_AFTER_S,
        interval_s: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.source = source
        self.probe_interval_s = probe_interval_s
        self._readiness = Readiness(checks, source.breaker_state, check_timeout_s)
        self._clock = clock
        self.started_at = clock()
        self._runner: web.AppRunner | None = None
        self._tasks: TaskSupervisor | None = None
        self._background: list[asyncio.Task[None]] = []
        self._closed = False
        self._progress = progress
        self._liveness = LivenessMonitor(stall_after_s, interval_s, time.monotonic)
        self.liveness_interval_s = min(1.0, stall_after_s / 4)
        self._collector = m.QualityCollector(source.quality)

    @classmethod
    @asynccontextmanager
    async def serve(
        cls,
        config: Config,
        source: StatusSource,
        *,
        checks: Mapping[str, Check | None] | None = None,
        check_timeout_s: float = CHECK_TIMEOUT_S,
        probe_interval_s: float | None = PROBE_INTERVAL_S,
        progress: Callable[[], Progress] | None = None,
    ) -> AsyncIterator[HttpServer]:
        """Listen on ``http.host``:``http.port`` (port 0 picks a free one: see :attr:`url`);
        ``progress`` reads the engine's progress markers for ``/healthz`` (None: liveness is
        only "the process serves requests")."""
        server = cls(
            config.http.host,
            config.http.port,
            source,
            default_checks(config) if checks is None else checks,
            check_timeout_s=check_timeout_s,
            probe_interval_s=probe_interval_s,
            progress=progress,
            stall_after_s=config.http.stall_after_s,
            interval_s=config.scheduler.interval_s,
        )
        async with server:
            yield server

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def checks(self) -> dict[str, Check | None]:
        return self._readiness.checks

    @property
    def check_timeout_s(self) -> float:
        return self._readiness.check_timeout_s

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.handle_metrics)
        app.router.add_get("/healthz", self.handle_healthz)
        app.router.add_get("/readyz", self.handle_readyz)
        app.router.add_get("/status", self.handle_status)
        app.router.add_get("/status.json", self.handle_status_json)
        app.router.add_get("/", self.handle_index)
        return app

    async def start(self) -> None:
        """Listen, then start the background probe (leave with :meth:`aclose`, same task)."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"http: cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); "
                "is another engine running? set http.port (INGEST_HTTP__PORT) or "
                "http.enabled = false",
                key="http.port",
            ) from None
        self._runner = runner
        addresses = runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        if self.host not in LOOPBACK:
            log.warning("http_not_loopback", extra={"host": self.host, "port": self.port})
        log.info("http_listening", extra={"host": self.host, "port": self.port})
        jobs = []
        if self.probe_interval_s is not None and self.checks:
            jobs.append(("readiness-probe", self._readiness.probe_forever(self.probe_interval_s)))
        if self._progress is not None:
            jobs.append(("liveness-watch", self._watch_liveness()))
        if jobs:
            self._tasks = TaskSupervisor("http")
            await self._tasks.__aenter__()
            self._background = [self._tasks.spawn(name, job) for name, job in jobs]

    async def aclose(self) -> None:
        """Stop the probe and the listener (idempotent)."""
        if self._closed:
            return
        self._closed = True
        tasks, self._tasks = self._tasks, None
        try:
            if tasks is not None:
                for task in self._background:
                    task.cancel()
                await tasks.__aexit__(None, None, None)
        finally:
            await self._readiness.aclose()
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None

    # -- handlers -----------------------------------------------------------------------------

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/status")

    async def handle_healthz(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "ok"}
        alive = True
        report = self.liveness()
        if report is not None:
            body = report.doc()
            alive = report.alive
        body["pid"] = os.getpid()
        body["uptime_s"] = round(self._clock() - self.started_at, 3)
        return web.json_response(
            body, status=200 if alive else 503, dumps=_dumps, headers=_SECURITY_HEADERS
        )

    async def handle_metrics(self, request: web.Request) -> web.Response:
        try:
            self.source.refresh_metrics()
        except Exception:  # a broken gauge must not take the whole scrape down
            log.exception("metrics_refresh_failed")
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        reg = m.registry([self._collector])
        body = await asyncio.get_running_loop().run_in_executor(None, encoder, reg)
        return web.Response(body=body, headers={"Content-Type": content_type, **_SECURITY_HEADERS})

    async def handle_readyz(self, request: web.Request) -> web.Response:
        ready, doc = await self.readiness()
        return web.json_response(
            doc, status=200 if ready else 503, dumps=_dumps, headers=_SECURITY_HEADERS
        )

    async def handle_status(self, request: web.Request) -> web.Response:
        page = render_status(self.view())
        resp = web.Response(
            text=page,
            content_type="text/html",
            headers={**_SECURITY_HEADERS, "Content-Security-Policy": _PAGE_CSP},
        )
        resp.enable_compression()
        return resp

    async def handle_status_json(self, request: web.Request) -> web.Response:
        return web.json_response(status_doc(self.view()), dumps=_dumps, headers=_SECURITY_HEADERS)

    # -- helpers ------------------------------------------------------------------------------

    def view(self) -> StatusView:
        return StatusView(
            now=self._clock(),
            started_at=self.started_at,
            version=__version__,
            cycles=list(self.source.recent_cycles()),
            breaker=m.breaker_name(self.source.breaker_state()),
            rate=self.source.rate_limit(),
            quality=self.source.quality(),
        )

    def liveness(self) -> LivenessReport | None:
        """A fresh liveness reading (None without a progress source)."""
        if self._progress is None:
            return None
        return self._liveness.observe(self._progress())

    async def _watch_liveness(self) -> None:
        """Read the progress markers every ``liveness_interval_s``: the stall clocks, gauges and
        logs stay current whether or not anything polls ``/healthz``."""
        while True:
            self.liveness()
            await asyncio.sleep(self.liveness_interval_s)

    async def readiness(self) -> ReadinessReport:
        """Run every check (one run at a time: concurrent probes share it)."""
        return await self._readiness.run()


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
