"""The engine's HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``, ``/status``.

Run by the supervisor (``async with HttpServer.serve(config, source) as http``) on
``http.host``:``http.port`` - loopback by default: the status page is operational detail, not a
public page (no secret is ever shown). Everything it shows comes from a :class:`StatusSource`
the supervisor implements; the server keeps no state of its own besides the readiness results.

``/metrics``
    Prometheus exposition (text 0.0.4, or OpenMetrics when the scraper asks) of every process's
    metrics (:mod:`engine.observe.metrics`, multiprocess mode) plus the data-quality gauges of the
    supervisor's latest :class:`~engine.observe.quality.QualitySnapshot`. Before collecting, the
    source's
    ``refresh_metrics()`` sets the gauges read from shared state (breaker, rate limit, rings).
    Reading the metric files runs in a thread so a scrape never stalls the supervisor's loop.
``/healthz``
    200 while the process serves requests (liveness).
``/readyz``
    200 only if NATS (a round trip and JetStream's account info), PostgreSQL (``SELECT 1``) and
    Redis (``PING``) answer within ``check_timeout_s`` each, and the Yahoo circuit breaker is not
    open; else 503. The JSON body has one entry per check: ``ok`` (with the latency),
    ``fail`` (with the exception's class name or ``timeout``: never a message, which could quote
    a DSN), or ``skipped`` for a dependency disabled in the configuration. Each check opens a
    short-lived connection of its own (the engine's pooled connections live in the publisher
    process); concurrent probes share one run. The server also runs the checks every
    ``probe_interval_s`` by itself, so ``ingestion_dependency_up`` stays current without an
    orchestrator probing. A dependency changing state is logged once.
``/status``
    A small self-contained HTML page (no script; refreshes itself every 10 s): breaker state,
    rate limit and headroom, error rates, the last cycles, the freshness heatmap of every symbol
    grouped by sector, the top 10 failing symbols. ``/status.json`` has the same figures (no
    heatmap).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import orjson
from aiohttp import web
from prometheus_client.exposition import choose_encoder

from engine import __version__
from engine.config import Config, NatsSettings, PostgresSettings, RedisSettings
from engine.deps import nats as nats_dep
from engine.deps import postgres as postgres_dep
from engine.deps import redis as redis_dep
from engine.errors import ConfigError
from engine.observe import metrics as m
from engine.observe.quality import Level, QualitySnapshot
from engine.stats import CycleStats

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S: Final = 2.0
PROBE_INTERVAL_S: Final = 15.0
STATUS_CYCLES: Final = 10
REFRESH_S: Final = 10
LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})

Check = Callable[[float], Awaitable[None]]
"""A readiness check: returns if the dependency answered, raises otherwise; the argument is the
time it may take (the server also enforces it)."""


# ----------------------------------------------------------------------------- the source


CycleStatus = CycleStats
"""A completed cycle as the status page reads it."""


@dataclass(frozen=True, slots=True)
class RateView:
    """The adaptive rate limiter as the page shows it (from
    ``YahooGuard.snapshot()``);
    ``headroom_ratio`` is :func:`engine.observe.metrics.budget_headroom` (0: a cycle is not
    covered)."""

    current_rps: float
    max_rps: float
    headroom_ratio: float


class StatusSource(Protocol):
    """What the supervisor exposes to the HTTP server (every method is cheap and sync)."""

    def recent_cycles(self) -> Sequence[CycleStatus]:
        """The last completed cycles, oldest first (a few dozen at most)."""
        ...

    def breaker_state(self) -> int | str:
        """``engine.source.breaker.BreakerState`` (0 closed, 1 half-open, 2 open) or its name."""
        ...

    def rate_limit(self) -> RateView | None: ...

    def quality(self) -> QualitySnapshot | None:
        """The latest data-quality snapshot (None before the first cycle)."""
        ...

    def refresh_metrics(self) -> None:
        """Set the gauges read from shared state (``metrics.set_breaker_state``,
        ``set_rate_limit``, ``set_ring_occupancy``); called before each scrape."""
        ...


# ----------------------------------------------------------------------------- readiness


CheckStatus = Literal["ok", "fail", "skipped"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    status: CheckStatus
    latency_ms: float | None = None
    error: str | None = None
    detail: str | None = None

    def doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.latency_ms is not None:
            out["latency_ms"] = round(self.latency_ms, 2)
        if self.error is not None:
            out["error"] = self.error
        if self.detail is not None:
            out["detail"] = self.detail
        return out


async def run_check(check: Check, timeout_s: float, clock: Callable[[], float]) -> CheckResult:
    """Run one check under ``timeout_s``; failures become a class name, never a message."""
    t0 = clock()
    try:
        await asyncio.wait_for(check(timeout_s), timeout_s)
    except TimeoutError:
        return CheckResult("fail", error="timeout")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # any failure of a probe means "not ready"
        return CheckResult("fail", error=type(exc).__name__)
    return CheckResult("ok", latency_ms=(clock() - t0) * 1000.0)


def breaker_result(state: int | str) -> CheckResult:
    name = m.BREAKER_STATES[m.breaker_value(state)]
    return CheckResult("fail" if name == "open" else "ok", detail=name)


def nats_check(settings: NatsSettings) -> Check:
    """Connect (no reconnects), one round trip, JetStream account info, close."""

    async def check(timeout_s: float) -> None:
        await nats_dep.probe(settings, timeout_s)

    return check


def postgres_check(settings: PostgresSettings) -> Check:
    """Connect, ``SELECT 1``, close."""

    async def check(timeout_s: float) -> None:
        conn = await asyncio.wait_for(
            postgres_dep.connect(settings, purpose="readyz"), timeout=timeout_s
        )
        try:
            await postgres_dep.ping(conn, timeout_s)
        finally:
            await conn.close(timeout=timeout_s)

    return check


def redis_check(settings: RedisSettings) -> Check:
    """Connect, ``PING``, close."""

    async def check(timeout_s: float) -> None:
        client = redis_dep.client(settings, timeout_s=timeout_s)
        try:
            await redis_dep.ping(client)
        finally:
            await client.aclose()

    return check


def default_checks(config: Config) -> dict[str, Check | None]:
    """NATS, PostgreSQL and Redis per the configuration (None = disabled: reported skipped)."""
    return {
        "nats": nats_check(config.nats),
        "postgres": postgres_check(config.postgres) if config.postgres.enabled else None,
        "redis": redis_check(config.redis) if config.redis.enabled else None,
    }


# ------------------------------------------------------------------------------ status page


@dataclass(frozen=True, slots=True)
class StatusView:
    """Everything ``/status`` shows, gathered once per request."""

    now: float
    started_at: float
    version: str
    cycles: Sequence[CycleStatus]
    breaker: str
    rate: RateView | None
    quality: QualitySnapshot | None


def error_rates(cycles: Sequence[CycleStatus]) -> tuple[float | None, float | None]:
    """(failed requests / requests, symbols without a quote / requested) over ``cycles``.

    A failed request is a batch request that failed after its retries - the Grafana "Error
    rate" panel's ``ingestion_fetch_failures_total``; the engine then splits the batch and
    usually still gets every symbol, which the second ratio (failed + missing) shows."""
    requests = sum(c.fetch.requests for c in cycles)
    failed_requests = sum(c.fetch.failed_requests for c in cycles)
    requested = sum(c.fetch.requested for c in cycles)
    lost = sum(c.fetch.failed + c.fetch.missing for c in cycles)
    return (
        failed_requests / requests if requests else None,
        lost / requested if requested else None,
    )


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100.0 * x:.1f}%"


def _age(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "never"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


_CSS: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#1d2330;background:#f6f7f9}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:20px 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 12px;min-width:150px}
.card b{display:block;font-size:18px}.card small{color:#667}
.badge{padding:2px 8px;border-radius:10px;color:#fff;font-weight:600}
.closed{background:#2e7d32}.half_open{background:#ef8f00}.open{background:#c62828}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #dde1e7;padding:3px 8px;text-align:right}
th{background:#eef0f3;text-align:center}td.l{text-align:left}tr.bad td{background:#fdecea}
.sector{margin:6px 0}.sector h3{font-size:13px;margin:6px 0 2px}
.sector h3 small{font-weight:400;color:#667}
.cells{display:flex;flex-wrap:wrap;gap:1px}
.cells i{width:7px;height:7px;display:block}
.l0{background:#2e7d32}.l1{background:#9ccc65}.l2{background:#ef8f00}.l3{background:#c62828}
.l4{background:#9e9e9e}
.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""

_LEVEL_TEXT: Final = {
    Level.FRESH: "fresh",
    Level.LAGGING: "lagging (> 1 min, regular hours)",
    Level.MISSING: "missing this cycle",
    Level.STALE: "stale (> 5 min, regular hours)",
    Level.NEVER: "never seen",
}


def _cards(v: StatusView) -> str:
    req_rate, sym_rate = error_rates(v.cycles)
    last = v.cycles[-1] if v.cycles else None
    items = [
        ("Breaker", f'<span class="badge {v.breaker}">{v.breaker.replace("_", "-")}</span>'),
        (
            "Rate limit",
            f"{v.rate.current_rps:.1f} / {v.rate.max_rps:.1f} req/s" if v.rate else "–",
        ),
        ("Headroom", _pct(v.rate.headroom_ratio) if v.rate else "–"),
        ("Request error rate", _pct(req_rate)),
        ("Symbols lost", _pct(sym_rate)),
        ("Last cycle", f"#{last.cycle} ({last.seconds:.2f}s)" if last else "none yet"),
    ]
    q = v.quality
    if q is not None:
        items += [
            ("Missing", f"{q.missing} ({_pct(q.missing_ratio)})"),
            ("Stale", f"{q.stale}" + ("" if q.regular_hours else " (market closed)")),
        ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><small>{html.escape(k)}</small><b>{val}</b></div>'
            for k, val in items
        )
        + "</div>"
    )


def _cycles_table(cycles: Sequence[CycleStatus]) -> str:
    head = (
        "<tr><th>cycle</th><th>ok</th><th>requested</th><th>valid</th><th>rejected</th>"
        "<th>missing</th><th>failed</th><th>published</th><th>dedup</th><th>seconds</th></tr>"
    )
    rows = []
    for c in reversed(cycles[-STATUS_CYCLES:]):
        cls = "" if c.ok else ' class="bad"'
        rows.append(
            f"<tr{cls}><td>{c.cycle}</td><td>{'yes' if c.ok else 'no'}</td>"
            f"<td>{c.fetch.requested}</td><td>{c.fetch.valid}</td>"
            f"<td>{sum(c.fetch.rejected.values())}</td><td>{c.fetch.missing}</td>"
            f"<td>{c.fetch.failed}</td><td>{c.publish.published}</td>"
            f"<td>{c.publish.deduplicated + c.fetch.unchanged}</td><td>{c.seconds:.2f}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td class="l" colspan="10">no cycle completed yet</td></tr>')
    return f'<table id="cycles">{head}{"".join(rows)}</table>'


def _failing_table(q: QualitySnapshot | None) -> str:
    head = (
        "<tr><th>#</th><th>symbol</th><th>sector</th><th>missed cycles</th>"
        "<th>current streak</th><th>last quote</th></tr>"
    )
    rows = []
    if q is not None:
        for i, f in enumerate(q.top_failing, start=1):
            rows.append(
                f'<tr><td>{i}</td><td class="l">{html.escape(f.symbol)}</td>'
                f'<td class="l">{html.escape(f.sector)}</td><td>{f.missed} / {q.window}</td>'
                f"<td>{f.streak}</td><td>{_age(f.age_s)}</td></tr>"
            )
    if not rows:
        rows.append('<tr><td class="l" colspan="6">no failing symbol</td></tr>')
    return f'<table id="failing">{head}{"".join(rows)}</table>'


def _heatmap(q: QualitySnapshot | None) -> str:
    if q is None:
        return '<div id="heatmap"><p>no cycle completed yet</p></div>'
    legend = (
        '<p class="legend">'
        + "".join(f'<i class="l{int(lv)}"></i>{html.escape(t)}' for lv, t in _LEVEL_TEXT.items())
        + "</p>"
    )
    parts = [f'<div id="heatmap">{legend}']
    for sec, cells in q.heatmap():
        name = html.escape(sec.name)
        parts.append(
            f'<div class="sector" data-sector="{name}"><h3>{name} <small>{sec.symbols} symbols'
            f' · {sec.missing} missing · {sec.stale} stale</small></h3><div class="cells">'
        )
        parts.append(
            "".join(
                f'<i class="l{int(c.level)}" title="{html.escape(c.symbol)} {_age(c.age_s)}"></i>'
                for c in cells
            )
        )
        parts.append("</div></div>")
    parts.append("</div>")
    return "".join(parts)


def render_status(v: StatusView) -> str:
    """The ``/status`` page (pure: everything comes from ``v``)."""
    up = _age(v.now - v.started_at)
    q = v.quality
    when = (
        f"quality as of cycle {q.cycle}, {_age(v.now - q.at)} ago, window {q.window} cycles"
        if q
        else "no quality data yet"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        "<title>Ingestion status</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Ingestion engine <small>v{html.escape(v.version)} · up {up}</small></h1>"
        f"{_cards(v)}"
        f"<h2>Last cycles</h2>{_cycles_table(v.cycles)}"
        f"<h2>Top 10 failing symbols</h2>{_failing_table(q)}"
        f"<h2>Freshness by sector</h2><p><small>{html.escape(when)}</small></p>{_heatmap(q)}"
        "</body></html>"
    )


def status_doc(v: StatusView) -> dict[str, Any]:
    req_rate, sym_rate = error_rates(v.cycles)
    q = v.quality
    return {
        "version": v.version,
        "uptime_s": round(v.now - v.started_at, 3),
        "breaker": v.breaker,
        "rate_limit": None
        if v.rate is None
        else {
            "current_rps": v.rate.current_rps,
            "max_rps": v.rate.max_rps,
            "headroom_ratio": v.rate.headroom_ratio,
        },
        "request_error_rate": req_rate,
        "symbol_loss_rate": sym_rate,
        "cycles": [
            {
                "cycle": c.cycle,
                "ok": c.ok,
                "requested": c.fetch.requested,
                "valid": c.fetch.valid,
                "missing": c.fetch.missing,
                "failed": c.fetch.failed,
                "published": c.publish.published,
                "seconds": c.seconds,
            }
            for c in v.cycles[-STATUS_CYCLES:]
        ],
        "quality": None
        if q is None
        else {
            "cycle": q.cycle,
            "symbols": q.symbols,
            "missing": q.missing,
            "stale": q.stale,
            "regular_hours": q.regular_hours,
            "sectors": [
                {"name": s.name, "symbols": s.symbols, "missing": s.missing, "stale": s.stale}
                for s in q.sectors
            ],
            "top_failing": [
                {"symbol": f.symbol, "sector": f.sector, "missed": f.missed, "streak": f.streak}
                for f in q.top_failing
            ],
        },
    }


# ---------------------------------------------------------------------------------- server


_SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_PAGE_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


class HttpServer:
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
    ) -> None:
        self.host = host
        self.port = port
        self.source = source
        self.checks = dict(checks)
        self.check_timeout_s = check_timeout_s
        self.probe_interval_s = probe_interval_s
        self._probe_task: asyncio.Task[None] | None = None
        self._clock = clock
        self.started_at = clock()
        self._runner: web.AppRunner | None = None
        self._ready_task: asyncio.Task[tuple[bool, dict[str, Any]]] | None = None
        self._last_status: dict[str, str] = {}
        self._closed = False
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
    ) -> AsyncIterator[HttpServer]:
        """Listen on ``http.host``:``http.port`` (port 0 picks a free one: see :attr:`url`)."""
        server = cls(
            config.http.host,
            config.http.port,
            source,
            default_checks(config) if checks is None else checks,
            check_timeout_s=check_timeout_s,
            probe_interval_s=probe_interval_s,
        )
        await server.start()
        try:
            yield server
        finally:
            await server.aclose()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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
        if self.probe_interval_s is not None and self.checks:
            self._probe_task = asyncio.create_task(self._probe_loop(self.probe_interval_s))

    async def _probe_loop(self, interval_s: float) -> None:
        while True:
            try:
                await self.readiness()
            except Exception:  # never let the background probe die
                log.exception("readiness_probe_failed")
            await asyncio.sleep(interval_s)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        if self._ready_task is not None and not self._ready_task.done():
            self._ready_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ready_task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers -----------------------------------------------------------------------------

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/status")

    async def handle_healthz(self, request: web.Request) -> web.Response:
        body = {
            "status": "ok",
            "pid": os.getpid(),
            "uptime_s": round(self._clock() - self.started_at, 3),
        }
        return web.json_response(body, dumps=_dumps, headers=_SECURITY_HEADERS)

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
            breaker=m.BREAKER_STATES[m.breaker_value(self.source.breaker_state())],
            rate=self.source.rate_limit(),
            quality=self.source.quality(),
        )

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Run every check (one run at a time: concurrent probes share it)."""
        task = self._ready_task
        if task is None or task.done():
            task = self._ready_task = asyncio.create_task(self._check_all())
        return await asyncio.shield(task)

    async def _check_all(self) -> tuple[bool, dict[str, Any]]:
        names = list(self.checks)
        runs = [
            run_check(c, self.check_timeout_s, time.perf_counter)
            for c in self.checks.values()
            if c is not None
        ]
        done = iter(await asyncio.gather(*runs))
        results: dict[str, CheckResult] = {}
        for name in names:
            if self.checks[name] is None:
                results[name] = CheckResult("skipped", detail="disabled")
            else:
                results[name] = next(done)
        results["breaker"] = breaker_result(self.source.breaker_state())
        self._note(results)
        ready = all(r.status != "fail" for r in results.values())
        doc = {
            "status": "ready" if ready else "not_ready",
            "checks": {k: r.doc() for k, r in results.items()},
        }
        return ready, doc

    def _note(self, results: Mapping[str, CheckResult]) -> None:
        for name, r in results.items():
            if r.status != "skipped" and name != "breaker":
                m.set_dependency_up(name, r.status == "ok")
            before = self._last_status.get(name)
            self._last_status[name] = r.status
            if before is not None and before != r.status:
                level = logging.INFO if r.status == "ok" else logging.WARNING
                log.log(
                    level,
                    "readiness_changed",
                    extra={"check": name, "status": r.status, "error": r.error or r.detail},
                )


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
