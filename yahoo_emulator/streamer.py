"""Yahoo's websocket streamer (``wss://streamer.finance.yahoo.com/?version=2``) on the emulator's
origin: a websocket upgrade of ``GET /`` (any query; a plain ``GET /`` is still the cookie).

* Client frames ``{"subscribe": [...]}`` / ``{"unsubscribe": [...]}``, cumulative, at most
  ``stream_max_symbols`` per connection (extras dropped silently, unknown symbols use up slots);
  a malformed frame aborts the socket with no close status (:mod:`.stream_conn`).
* Server frames ``{"type":"pricing","message":"<base64 PricingData>"}``, encoded with the
  engine's codec (:mod:`engine.source.stream`): one snapshot per newly subscribed known symbol,
  then updates. A pump reads the emulator clock every ``stream_pump_s`` (real) seconds, advances
  the market and sends what :class:`~.stream_feed.StreamFeed` says is due, the same frame to every
  subscriber of a symbol (:mod:`.stream_feed`: cadence, fields, consistency with v7).
* A socket whose client sent no frame for ``stream_idle_close_s`` (real seconds; pings do not
  count) is closed normally. aiohttp answers pings, also on a stalled socket.

Faults (knobs of :mod:`.config`, and :meth:`Streamer.trigger` behind
``POST /_emulator/stream/fault`` to strike live connections now):

* ``stream_refuse``: the upgrade is answered ``stream_refuse_status`` (429 or 503), no socket;
* ``stream_fault_close`` / ``stream_fault_abort`` / ``stream_fault_stall``: drawn when a
  connection opens; at 0.5-1.5 x ``stream_fault_after_s`` it is closed (1000), aborted (no close
  frame: 1006 at the client) or goes silent for good;
* ``stream_fault_garbage`` / ``stream_fault_unknown_type``: per frame, a garbage frame (not JSON,
  not base64, not a protobuf, no symbol) or a frame of another type is sent before it;
* ``stream_fault_stale_snapshot``: per snapshot, an old one (:mod:`.stream_feed`).

Counters: :class:`~.stats.StreamStats` (``streamer`` in ``GET /_emulator/stats``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import Any, Final, Protocol

import orjson
from aiohttp import WSMsgType, web

from engine.source.stream.frames import envelope
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.market import Market
from yahoo_emulator.stats import StreamStats
from yahoo_emulator.stream_conn import Fate, MalformedFrame, StreamConnection, parse_client_frame
from yahoo_emulator.stream_feed import StreamFeed

logger = logging.getLogger(__name__)

FAULT_KINDS: Final = ("close", "abort", "stall", "garbage", "unknown_type")
_REFUSED_TEXT: Final = {429: "Too Many Requests\r\n", 503: "Service Unavailable\r\n"}
_GARBAGE: Final = (
    "<html><body>Will be right back...</body></html>",  # not JSON
    '{"type":"pricing","message":"%%%not base64%%%"}',
    envelope(base64.b64encode(b"\x0a\x04AAPL\x15\xff").decode()),  # truncated protobuf
    envelope(base64.b64encode(b"\x15\x00\x00\x80\x3f").decode()),  # no id
)
_OTHER_TYPES: Final = ("heartbeat", "static")
_WS_MAX_MSG: Final = 4 * 1024 * 1024


class StreamView(Protocol):
    """What the streamer uses of the emulator (:class:`.state.Emulator` has it all)."""

    @property
    def cfg(self) -> EmulatorConfig: ...

    @property
    def market(self) -> Market: ...

    @property
    def delisted(self) -> frozenset[str]: ...

    def now(self) -> float: ...


def is_upgrade(request: web.Request) -> bool:
    """Does this request ask for a websocket?"""
    return request.headers.get("Upgrade", "").lower() == "websocket"


class Streamer:
    """The streamer of one emulator: connections, subscribers per symbol, the pump, counters."""

    def __init__(self, emu: StreamView, seed: int) -> None:
        self._emu = emu
        self.feed = StreamFeed(emu.market, seed)
        self.stats = StreamStats()
        self._rng = random.Random(seed)
        self._conns: dict[int, StreamConnection] = {}
        self._subs: dict[str, set[StreamConnection]] = {}
        self._ids = 0
        self._pump: asyncio.Task[None] | None = None

    def snapshot(self) -> dict[str, Any]:
        out = self.stats.snapshot()
        out["connections_open"] = len(self._conns)
        out["symbols_subscribed"] = sum(len(c.symbols) for c in self._conns.values())
        out["symbols_streamed"] = len(self.feed)
        return out

    def _hit(self, p: float) -> bool:
        return p > 0.0 and self._rng.random() < p

    # -- a connection ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        cfg = self._emu.cfg
        if self._hit(cfg.stream_refuse):
            status = cfg.stream_refuse_status
            self.stats.refused[str(status)] += 1
            return web.Response(status=status, text=_REFUSED_TEXT[status])
        ws = web.WebSocketResponse(autoping=True, max_msg_size=_WS_MAX_MSG)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        self._ids += 1
        conn = StreamConnection(self._ids, ws, request, loop.time())
        conn.fate = self._draw_fate(cfg, loop.time())
        self._conns[conn.id] = conn
        self.stats.connections_opened += 1
        self._start_pump()
        writer = asyncio.create_task(conn.write_loop(), name=f"stream-writer-{conn.id}")
        try:
            await self._serve(conn)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self._forget(conn)
            self.stats.closes[conn.reason or "client"] += 1
        return ws

    def _draw_fate(self, cfg: EmulatorConfig, now: float) -> Fate | None:
        for kind, p in (
            ("close", cfg.stream_fault_close),
            ("abort", cfg.stream_fault_abort),
            ("stall", cfg.stream_fault_stall),
        ):
            if self._hit(p):
                return Fate(kind, now + cfg.stream_fault_after_s * self._rng.uniform(0.5, 1.5))
        return None

    async def _serve(self, conn: StreamConnection) -> None:
        loop = asyncio.get_running_loop()
        while not conn.ended:
            cfg = self._emu.cfg
            try:  # an absolute deadline: the pings aiohttp answers inside receive() must not
                async with asyncio.timeout_at(conn.deadline(cfg)):  # postpone it
                    msg = await conn.ws.receive()
            except TimeoutError:
                await self._expire(conn, cfg, loop.time())
                continue
            if msg.type is WSMsgType.TEXT:
                conn.last_heard = loop.time()
                try:
                    self._on_text(conn, msg.data)
                except MalformedFrame as exc:
                    logger.info("stream client frame malformed", extra={"problem": str(exc)})
                    conn.abort("malformed")
            elif msg.type is WSMsgType.BINARY:
                conn.abort("malformed")
            else:  # CLOSE, CLOSING, CLOSED, ERROR: the client left (or we ended it)
                return

    async def _expire(self, conn: StreamConnection, cfg: EmulatorConfig, now: float) -> None:
        fate = conn.fate
        if fate is not None and now >= fate.at:
            conn.fate = None
            await self._strike(conn, fate.kind)
        elif cfg.stream_idle_close_s > 0 and now >= conn.last_heard + cfg.stream_idle_close_s:
            await conn.close("idle")

    async def _strike(self, conn: StreamConnection, kind: str) -> None:
        self.stats.faults[kind] += 1
        if kind == "close":
            await conn.close("fault_close")
        elif kind == "abort":
            conn.abort("fault_abort")
        elif kind == "stall":
            conn.mute()
        elif kind == "garbage":
            conn.send(self._rng.choice(_GARBAGE))
        elif kind == "unknown_type":
            conn.send(envelope("CgRBQVBM", self._rng.choice(_OTHER_TYPES)))

    def _on_text(self, conn: StreamConnection, data: str) -> None:
        frame = parse_client_frame(data)
        if frame.subscribe:
            self.stats.subscribe_frames += 1
            self._subscribe(conn, frame.subscribe)
        if frame.unsubscribe:
            self.stats.unsubscribe_frames += 1
            self._unsubscribe(conn, frame.unsubscribe)

    def _subscribe(self, conn: StreamConnection, symbols: list[str]) -> None:
        emu = self._emu
        cfg = emu.cfg
        added, dropped = conn.subscribe(symbols, cfg.stream_max_symbols)
        self.stats.symbols_dropped += dropped
        if not added:
            return
        now = emu.now()
        emu.market.sync(now)
        delisted = emu.delisted
        for symbol, pos in zip(added, emu.market.resolve(added), strict=True):
            if pos < 0 or symbol in delisted:
                self.stats.symbols_unknown += 1
                continue
            conn.symbols[symbol] = True
            self.feed.add(symbol, pos, now, cfg)
            self._subs.setdefault(symbol, set()).add(conn)
            stale = self._hit(cfg.stream_fault_stale_snapshot)
            if stale:
                self.stats.faults["stale_snapshot"] += 1
            text = self.feed.snapshot(symbol, now, cfg, stale=stale)
            if self._deliver(conn, symbol, text, cfg):
                self.stats.snapshots_sent += 1

    def _unsubscribe(self, conn: StreamConnection, symbols: list[str]) -> None:
        for symbol, known in conn.unsubscribe(symbols):
            if known:
                self._drop_subscriber(conn, symbol)

    def _drop_subscriber(self, conn: StreamConnection, symbol: str) -> None:
        self.feed.remove(symbol)
        subs = self._subs[symbol]
        subs.discard(conn)
        if not subs:
            del self._subs[symbol]

    def _forget(self, conn: StreamConnection) -> None:
        self._conns.pop(conn.id, None)
        for symbol, known in conn.symbols.items():
            if known:
                self._drop_subscriber(conn, symbol)
        conn.symbols.clear()

    def _deliver(self, conn: StreamConnection, symbol: str, text: str, cfg: EmulatorConfig) -> bool:
        if conn.muted or conn.ended:
            return False
        if self._hit(cfg.stream_fault_garbage):
            self.stats.faults["garbage"] += 1
            conn.send(self._rng.choice(_GARBAGE))
        if self._hit(cfg.stream_fault_unknown_type):
            self.stats.faults["unknown_type"] += 1
            message = orjson.loads(text)["message"]  # the same message under another type
            conn.send(envelope(message, self._rng.choice(_OTHER_TYPES)))
        if not conn.send(text):
            return False
        self.stats.frames_sent += 1
        self.stats.frames_by_symbol[symbol] += 1
        return True

    # -- the pump -----------------------------------------------------------------------------

    def _start_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump(), name="stream-pump")
            self._pump.add_done_callback(_log_failure)

    async def _run_pump(self) -> None:
        while self._conns:
            self.tick()
            await asyncio.sleep(self._emu.cfg.stream_pump_s)

    def tick(self) -> int:
        """One pump pass: advance the market to now and send every due frame. Returns the
        number of frames queued."""
        if not self._subs:
            return 0
        emu = self._emu
        cfg = emu.cfg
        now = emu.now()
        emu.market.sync(now)
        sent = 0
        for symbol, texts in self.feed.updates(now, cfg):
            for conn in self._subs.get(symbol, ()):
                for text in texts:
                    sent += self._deliver(conn, symbol, text, cfg)
        return sent

    # -- control --------------------------------------------------------------------------------

    async def trigger(self, kind: str, count: int = 1) -> list[int]:
        """Strike up to ``count`` live connections (oldest first) with fault ``kind`` now;
        returns their ids."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}, not {kind!r}")
        targets = [c for c in self._conns.values() if not c.ended and not c.muted][:count]
        for conn in targets:
            await self._strike(conn, kind)
        return [c.id for c in targets]

    async def aclose(self) -> None:
        """Close every socket (server shutdown) and stop the pump."""
        for conn in list(self._conns.values()):
            await conn.close("shutdown", code=1001)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("stream pump failed", exc_info=task.exception())


def parse_trigger(body: Mapping[str, Any]) -> tuple[str, int]:
    """``{"kind": ..., "count": n}`` of ``POST /_emulator/stream/fault`` (raises ValueError)."""
    kind = body.get("kind")
    count = body.get("count", 1)
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind: one of {', '.join(FAULT_KINDS)}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError("count: a positive integer")
    return str(kind), count
