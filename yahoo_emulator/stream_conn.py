"""One streamer connection: the client's frames, its ordered subscription list, its outbound
queue and writer, and the ways it ends.

Client frames (:func:`parse_client_frame`) are JSON objects with ``subscribe`` and/or
``unsubscribe`` lists of strings; ``{}`` and empty lists are fine. Anything else - not JSON, not
an object, another key (an unknown action), a value that is not a list, a ``null`` (or any
non-string) symbol, a binary frame - is :class:`MalformedFrame`, and the streamer aborts the
socket without a close status, as Yahoo does. Symbols are upper-cased (as the v7 endpoint does).

The subscription list (:meth:`StreamConnection.subscribe`) keeps the order symbols first came in,
holds at most ``cap`` of them (first come, first served; the rest are dropped without a word;
unknown symbols take slots too), ignores symbols it already holds (re-sending the whole set is a
no-op) and frees slots on ``unsubscribe``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web

from yahoo_emulator.config import EmulatorConfig

MAX_QUEUE: Final = 20_000  # frames waiting for one socket; beyond that the reader is too slow
_ACTIONS: Final = ("subscribe", "unsubscribe")


class MalformedFrame(ValueError):
    """A client frame Yahoo would close the socket for."""


@dataclass(frozen=True)
class ClientFrame:
    subscribe: list[str]
    unsubscribe: list[str]


def parse_client_frame(data: str) -> ClientFrame:
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MalformedFrame("not JSON") from None
    if not isinstance(obj, dict):
        raise MalformedFrame("not a JSON object")
    unknown = sorted(set(obj) - set(_ACTIONS))
    if unknown:
        raise MalformedFrame(f"unknown action {unknown}")
    lists: dict[str, list[str]] = {}
    for action in _ACTIONS:
        value = obj.get(action, [])
        if not isinstance(value, list):
            raise MalformedFrame(f"{action} is not a list")
        if not all(isinstance(s, str) for s in value):
            raise MalformedFrame(f"{action} holds a symbol that is not a string")
        lists[action] = [s.strip().upper() for s in value]
    return ClientFrame(lists["subscribe"], lists["unsubscribe"])


@dataclass(frozen=True)
class Fate:
    """A fault that strikes the connection at ``at`` (loop time): close, abort or stall."""

    kind: str
    at: float


class StreamConnection:
    """A live streamer socket. Event-loop thread only."""

    def __init__(
        self, cid: int, ws: web.WebSocketResponse, request: web.Request, now: float
    ) -> None:
        self.id = cid
        self.ws = ws
        self._request = request
        self.symbols: dict[str, bool] = {}  # in subscription order -> known to the emulator
        self.queue: asyncio.Queue[str] = asyncio.Queue(MAX_QUEUE)
        self.last_heard = now  # loop time of the last client frame
        self.fate: Fate | None = None
        self.muted = False
        self.reason: str | None = None  # why it ended, once it did

    @property
    def ended(self) -> bool:
        return self.reason is not None

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(self, symbols: list[str], cap: int) -> tuple[list[str], int]:
        """Add new ``symbols`` up to ``cap`` (0 = none): (the ones added, how many dropped)."""
        added: list[str] = []
        dropped = 0
        for s in symbols:
            if s in self.symbols or s in added:
                continue
            if cap and len(self.symbols) + len(added) >= cap:
                dropped += 1
                continue
            added.append(s)
        for s in added:
            self.symbols[s] = False  # the streamer marks the known ones
        return added, dropped

    def unsubscribe(self, symbols: list[str]) -> list[tuple[str, bool]]:
        """Free the slots of ``symbols``: (symbol, was known) of the ones held."""
        return [(s, self.symbols.pop(s)) for s in dict.fromkeys(symbols) if s in self.symbols]

    # -- sending ------------------------------------------------------------------------------

    def send(self, text: str) -> bool:
        """Queue a frame; False when the connection is muted or ending. A queue that overflows
        means the client does not read: the socket is aborted (``slow_reader``)."""
        if self.muted or self.ended:
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.abort("slow_reader")
            return False
        return True

    async def write_loop(self) -> None:
        """Write queued frames until the socket goes away (the handler cancels it at the end)."""
        ws = self.ws
        while True:
            text = await self.queue.get()
            if self.muted:
                continue
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):  # closing/closed under us
                return

    # -- ending -------------------------------------------------------------------------------

    def mute(self) -> None:
        """The silent stall: the socket stays open (and answers pings) but sends nothing."""
        self.muted = True
        while not self.queue.empty():
            self.queue.get_nowait()

    def abort(self, reason: str) -> None:
        """Drop the TCP connection: no close frame (the client sees 1006)."""
        if self.reason is None:
            self.reason = reason
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def close(self, reason: str, code: int = 1000) -> None:
        """A normal close handshake with ``code``."""
        if self.reason is None:
            self.reason = reason
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=reason.encode())

    def deadline(self, cfg: EmulatorConfig) -> float | None:
        """Loop time of the next deadline (idle close or fate), None if there is none."""
        deadlines = []
        if cfg.stream_idle_close_s > 0:
            deadlines.append(self.last_heard + cfg.stream_idle_close_s)
        if self.fate is not None:
            deadlines.append(self.fate.at)
        return min(deadlines) if deadlines else None
