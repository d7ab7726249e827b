"""The emulator's aiohttp application (:func:`build_app`) around its state (:mod:`.state`).

One origin serves every Yahoo host the client rewrites to it:

========================================  ==========  =====================================
path                                      endpoint    module
========================================  ==========  =====================================
``GET /`` (fc.yahoo.com)                  cookie      :mod:`.auth`
``GET /`` + websocket upgrade (streamer)  streamer    :mod:`.streamer`
``GET /v1/test/getcrumb``                 getcrumb    :mod:`.auth`
``GET /v7/finance/quote``                 quote       :mod:`.quotes`
``GET /v8/finance/chart/{symbol}``        chart       :mod:`.chart`
``GET /v10/finance/quoteSummary/{symbol}``  quoteSummary  :mod:`.quotesummary`
``POST /v1/finance/visualization``        visualization :mod:`.visualization`
``GET /v1/finance/screener/predefined/saved``  screener  :mod:`.screener`
``GET /ws/fundamentals-timeseries/...``   timeseries  :mod:`.quotesummary`
``/_emulator/...``                        control     :mod:`.control`
========================================  ==========  =====================================

New endpoint families are a module with an
``async def handle_x(emu, request)`` plus one line in :func:`build_app`; the edge middleware
gives them latency, rate limiting, faults, stats and the access log for free. The streamer's
websocket bypasses the edge (it has its own faults and counters, :mod:`.streamer`).

The *edge* middleware does, for every Yahoo endpoint (not control): injected latency; 414 for
an over-long request target; the per-client token bucket (429); the ``fault_429`` storm; the
``fault_reset``/``fault_5xx``/``fault_html`` outages; then the handler; then
``fault_truncate`` on JSON bodies; finally counts the request and writes the access-log line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from yahoo_emulator import (
    auth,
    chart,
    control,
    quotes,
    quotesummary,
    screener,
    streamer,
    visualization,
)
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.responses import (
    FAULT,
    JSON_CT,
    html_outage,
    server_error,
    too_many_requests,
    uri_too_long,
)
from yahoo_emulator.state import Emulator

EmuHandler = Callable[["Emulator", web.Request], Awaitable[web.StreamResponse]]


EMU_KEY: Final = web.AppKey("emulator", Emulator)


def _gate(
    emu: Emulator, request: web.Request, endpoint: str, cfg: EmulatorConfig
) -> tuple[web.StreamResponse | None, str | None]:
    """Answers that pre-empt the handler: (response, fault name) or (None, None)."""
    if cfg.max_url_length and len(request.raw_path) > cfg.max_url_length:
        return uri_too_long(), None
    client = request.remote or "?"
    if not emu.limiter.allow(client, cfg.rate_limit_rps, cfg.rate_limit_burst, emu.clock()):
        return too_many_requests(cfg), None
    kind = emu.faults.outage(cfg, endpoint)
    if kind is None:
        return None, None
    if kind == "429":
        return too_many_requests(cfg), "rate_limit_storm"
    if kind == "reset":
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500), "connection_reset"
    if kind == "5xx":
        return server_error(emu.faults.status_5xx()), "http_5xx"
    return html_outage(cfg.fault_html_status), "html_outage"


def _maybe_truncate(
    emu: Emulator, resp: web.StreamResponse, endpoint: str, cfg: EmulatorConfig
) -> web.StreamResponse | None:
    if not isinstance(resp, web.Response) or resp.status != 200:
        return None
    body = resp.body
    if not isinstance(body, bytes) or resp.headers.get("Content-Type") != JSON_CT:
        return None
    cut = emu.faults.truncate_at(cfg, endpoint, len(body))
    if cut is None:
        return None
    headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
    return web.Response(body=body[:cut], status=200, headers=headers)


async def _serve_yahoo(
    emu: Emulator,
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    endpoint: str,
) -> web.StreamResponse:
    arrived, t0 = time.time(), time.perf_counter()
    cfg = emu.cfg
    latency = emu.faults.latency_ms(cfg)
    if latency > 0:
        await asyncio.sleep(latency / 1000.0)
    resp, fault = _gate(emu, request, endpoint, cfg)
    try:
        if resp is None:
            stall = emu.faults.stall_s(cfg, endpoint)
            if stall > 0:  # the client times out; if it waits, a normal answer (recorded
                await asyncio.sleep(stall)  # when it ends: aiohttp does not cancel on hang-up)
            resp = await handler(request)
            fault = request.get(FAULT) or ("stalled" if stall > 0 else None)
            cut = _maybe_truncate(emu, resp, endpoint, cfg)
            if cut is not None:
                resp, fault = cut, "truncated_json"
    except web.HTTPException as exc:
        emu.record(request, endpoint, exc.status, fault, arrived, t0, latency)
        raise
    status = 0 if fault == "connection_reset" else resp.status
    emu.record(request, endpoint, status, fault, arrived, t0, latency)
    return resp


@web.middleware
async def edge_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    name = request.match_info.route.name or "other"
    endpoint = name.partition(".")[0]
    if endpoint == "control" or (endpoint == "cookie" and streamer.is_upgrade(request)):
        return await handler(request)
    return await _serve_yahoo(request.app[EMU_KEY], request, handler, endpoint)


def _bind(fn: EmuHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await fn(request.app[EMU_KEY], request)

    handler.__name__ = fn.__name__
    return handler


async def handle_root(emu: Emulator, request: web.Request) -> web.StreamResponse:
    """``GET /``: the streamer for a websocket upgrade, else fc.yahoo.com's cookie."""
    if streamer.is_upgrade(request):
        return await emu.streamer.handle(request)
    return await auth.handle_cookie(emu, request)


def build_app(emu: Emulator) -> web.Application:
    app = web.Application(middlewares=[edge_middleware])
    app[EMU_KEY] = emu

    async def close_streams(app: web.Application) -> None:
        await app[EMU_KEY].streamer.aclose()

    app.on_shutdown.append(close_streams)
    r = app.router
    r.add_get("/", _bind(handle_root), name="cookie")
    r.add_get("/v1/test/getcrumb", _bind(auth.handle_getcrumb), name="getcrumb")
    r.add_get("/v7/finance/quote", _bind(quotes.handle_quote), name="quote")
    r.add_get("/v8/finance/chart/{symbol}", _bind(chart.handle_chart), name="chart")
    r.add_get(
        "/v10/finance/quoteSummary/{symbol}",
        _bind(quotesummary.handle_quote_summary),
        name="quoteSummary",
    )
    r.add_post(
        "/v1/finance/visualization",
        _bind(visualization.handle_visualization),
        name="visualization",
    )
    r.add_get(
        "/v1/finance/screener/predefined/saved",
        _bind(screener.handle_predefined),
        name="screener",
    )
    r.add_get(
        "/ws/fundamentals-timeseries/v1/finance/timeseries/{symbol}",
        _bind(quotesummary.handle_timeseries),
        name="timeseries",
    )
    r.add_get("/_emulator/health", _bind(control.handle_health), name="control.health")
    r.add_get("/_emulator/stats", _bind(control.handle_stats), name="control.stats")
    r.add_get("/_emulator/config", _bind(control.handle_get_config), name="control.config")
    r.add_post("/_emulator/config", _bind(control.handle_patch_config), name="control.patch")
    r.add_post(
        "/_emulator/expire_crumbs", _bind(control.handle_expire_crumbs), name="control.crumbs"
    )
    r.add_post("/_emulator/reset", _bind(control.handle_reset), name="control.reset")
    r.add_post("/_emulator/stream/fault", _bind(control.handle_stream_fault), name="control.stream")
    return app
