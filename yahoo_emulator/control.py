"""Control and introspection endpoints under ``/_emulator/`` (never faulted, delayed or counted).

* ``GET  /_emulator/health`` -> ``{"ok": true}``
* ``GET  /_emulator/stats`` -> counters (:class:`~yahoo_emulator.stats.Stats`) plus market state,
  instruments, cookies/crumbs issued and the current config
* ``GET  /_emulator/config`` -> the current knobs
* ``POST /_emulator/config`` with a JSON object of knobs -> the new knobs; 400
  ``{"error": ...}`` naming the bad key (nothing changes then)
* ``POST /_emulator/expire_crumbs`` -> ``{"expired": n}``: every crumb becomes invalid now
* ``POST /_emulator/reset`` -> zero the counters (the streamer's too) and empty the rate-limit
  buckets
* ``POST /_emulator/stream/fault`` with ``{"kind": K, "count": n}`` -> strike up to n live
  streamer connections now (oldest first) with K = close, abort, stall, garbage or
  unknown_type; ``{"struck": [connection ids]}``; 400 naming the bad key
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from yahoo_emulator.auth import AuthStore
from yahoo_emulator.config import ConfigPatchError, EmulatorConfig, config_to_dict
from yahoo_emulator.faults import RateLimiter
from yahoo_emulator.stats import Stats
from yahoo_emulator.streamer import Streamer, parse_trigger


class ControlView(Protocol):
    """What the ``/_emulator/*`` handlers use of the emulator
    (:class:`.state.Emulator` has it all)."""

    @property
    def cfg(self) -> EmulatorConfig: ...

    @property
    def auth(self) -> AuthStore: ...

    @property
    def limiter(self) -> RateLimiter: ...

    @property
    def stats(self) -> Stats: ...

    @property
    def streamer(self) -> Streamer: ...

    def configure(self, changes: Mapping[str, Any]) -> EmulatorConfig: ...

    def snapshot(self) -> dict[str, Any]: ...


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_INDENT_2),
        status=status,
        content_type="application/json",
    )


async def handle_health(emu: ControlView, request: web.Request) -> web.StreamResponse:
    return _json({"ok": True})


async def handle_stats(emu: ControlView, request: web.Request) -> web.StreamResponse:
    return _json(emu.snapshot())


async def handle_get_config(emu: ControlView, request: web.Request) -> web.StreamResponse:
    return _json(config_to_dict(emu.cfg))


async def handle_patch_config(emu: ControlView, request: web.Request) -> web.StreamResponse:
    try:
        changes = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return _json({"error": f"body is not JSON: {exc}"}, status=400)
    try:
        cfg = emu.configure(changes)
    except ConfigPatchError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json(config_to_dict(cfg))


async def handle_expire_crumbs(emu: ControlView, request: web.Request) -> web.StreamResponse:
    return _json({"expired": emu.auth.expire_all()})


async def handle_reset(emu: ControlView, request: web.Request) -> web.StreamResponse:
    emu.stats.reset()
    emu.streamer.stats.reset()
    emu.limiter.reset()
    return _json({"ok": True})


async def handle_stream_fault(emu: ControlView, request: web.Request) -> web.StreamResponse:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return _json({"error": f"body is not JSON: {exc}"}, status=400)
    if not isinstance(body, Mapping):
        return _json({"error": 'body must be {"kind": ..., "count": n}'}, status=400)
    try:
        kind, count = parse_trigger(body)
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json({"struck": await emu.streamer.trigger(kind, count)})
