"""Fixtures for the emulator's own tests: an in-process emulator plus an aiohttp client."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest

from yahoo_emulator import EmulatorConfig, RunningEmulator, serve_emulator

NY = ZoneInfo("America/New_York")
SYMBOLS = ["AAPL", "MSFT", "NVDA", "BRK-B", "JPM"]


def et(y: int, m: int, d: int, hh: int, mm: int = 0, ss: int = 0) -> float:
    """Epoch seconds of a New York wall time."""
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=NY).timestamp()


WED_1100 = et(2026, 11, 25, 11, 0)  # a Wednesday, regular session


class FakeClock:
    """An injectable clock the test moves by hand."""

    def __init__(self, t: float = WED_1100) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Resp:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Harness:
    """A running emulator and a cookie-keeping client (IP origins need ``unsafe=True``)."""

    def __init__(self, emu: RunningEmulator, http: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.http = http
        self.crumb = ""

    @property
    def url(self) -> str:
        return self.emu.url

    async def get(self, path: str, params: dict[str, str] | None = None) -> Resp:
        async with self.http.get(self.url + path, params=params) as r:
            return Resp(r.status, r.headers, await r.read())

    async def post(self, path: str, payload: Any = None) -> Resp:
        data = orjson.dumps(payload) if payload is not None else b""
        async with self.http.post(self.url + path, data=data) as r:
            return Resp(r.status, r.headers, await r.read())

    async def login(self) -> str:
        await self.get("/")
        self.crumb = (await self.get("/v1/test/getcrumb")).text
        return self.crumb

    async def quote(self, symbols: list[str] | str, **params: str) -> Resp:
        syms = symbols if isinstance(symbols, str) else ",".join(symbols)
        q = {"symbols": syms, "crumb": self.crumb, **params}
        return await self.get("/v7/finance/quote", q)

    async def quotes(self, symbols: list[str] | str, **params: str) -> list[dict[str, Any]]:
        r = await self.quote(symbols, **params)
        assert r.status == 200, r.body[:300]
        result: list[dict[str, Any]] = r.json()["quoteResponse"]["result"]
        return result

    async def chart(self, symbol: str, **params: str) -> Resp:
        return await self.get(f"/v8/finance/chart/{symbol}", params)

    def stats(self) -> dict[str, Any]:
        return self.emu.stats()


MakeEmu = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]


@pytest.fixture
def make_emu() -> MakeEmu:
    """``async with make_emu(clock=..., **knobs) as h:`` - an emulator and a logged-out client."""

    @contextlib.asynccontextmanager
    async def factory(
        clock: Callable[[], float] = time.time, **knobs: Any
    ) -> AsyncIterator[Harness]:
        cfg = EmulatorConfig(**knobs)
        async with serve_emulator(cfg, clock=clock) as emu:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                yield Harness(emu, http)

    return factory


@pytest.fixture
async def h(make_emu: MakeEmu) -> AsyncIterator[Harness]:
    """An emulator forced into REGULAR, logged in."""
    async with make_emu(market_state="REGULAR", seed=11) as harness:
        await harness.login()
        yield harness
