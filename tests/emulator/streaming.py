"""A websocket client of the emulator's streamer for the tests (aiohttp), decoding frames with
the engine's codec."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp

from engine.source.stream.frames import decode_frame, subscribe_frame, unsubscribe_frame
from engine.source.stream.pricing import Pricing
from tests.emulator.conftest import Harness


class StreamClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def subscribe(self, symbols: list[str]) -> None:
        await self.ws.send_str(subscribe_frame(symbols))

    async def unsubscribe(self, symbols: list[str]) -> None:
        await self.ws.send_str(unsubscribe_frame(symbols))

    async def text(self, wait_s: float = 3.0) -> str:
        """The next text frame (fails on anything else)."""
        msg = await self.ws.receive(timeout=wait_s)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        assert isinstance(msg.data, str)
        return msg.data

    async def frames(self, n: int, wait_s: float = 3.0) -> list[Pricing]:
        """The next ``n`` pricing frames."""
        out: list[Pricing] = []
        while len(out) < n:
            p = decode_frame(await self.text(wait_s))
            assert p is not None
            out.append(p)
        return out

    async def silent(self, seconds: float = 0.2) -> None:
        """Nothing arrives within ``seconds`` (the negative checks only)."""
        with contextlib.suppress(TimeoutError):
            msg = await self.ws.receive(timeout=seconds)
            raise AssertionError(f"expected silence, got {msg}")

    async def ended(self, wait_s: float = 3.0) -> aiohttp.WSMessage:
        """Wait for the socket to end (frames before that are skipped); the last message."""
        while True:
            msg = await self.ws.receive(timeout=wait_s)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR):  # fmt: skip
                return msg


@contextlib.asynccontextmanager
async def open_stream(h: Harness, **kwargs: object) -> AsyncIterator[StreamClient]:
    async with h.http.ws_connect(h.emu.stream_url, **kwargs) as ws:  # type: ignore[arg-type]
        yield StreamClient(ws)
