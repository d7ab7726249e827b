"""The streamer's faults, each as a client sees it, the runtime trigger, idle close, the knobs
on the CLI and at POST /_emulator/config, and the counters."""

from __future__ import annotations

import contextlib
import time

import aiohttp
import pytest

from engine.errors import StreamFrameError
from engine.source.stream.frames import decode_frame
from tests.emulator.conftest import FakeClock, MakeEmu
from tests.emulator.streaming import open_stream
from yahoo_emulator.cli import build_parser, config_from_args

pytestmark = [pytest.mark.fault, pytest.mark.timeout(30)]

QUIET = {"stream_pump_s": 10.0, "stream_same_time": 0.0, "stream_components": 0.0}


@pytest.mark.parametrize("status", [429, 503])
async def test_refused_upgrade(make_emu: MakeEmu, status: int) -> None:
    async with make_emu(stream_refuse=1.0, stream_refuse_status=status, **QUIET) as h:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            async with open_stream(h):
                pass
        assert info.value.status == status
        h.emu.configure(stream_refuse=0.0)
        async with open_stream(h) as c:
            await c.subscribe(["AAPL"])
            await c.frames(1)
        s = h.stats()["streamer"]
        assert s["refused"] == {str(status): 1} and s["connections_opened"] == 1


async def test_fault_close_is_a_normal_close(make_emu: MakeEmu) -> None:
    knobs = {**QUIET, "stream_fault_close": 1.0, "stream_fault_after_s": 0.1}
    async with make_emu(**knobs) as h, open_stream(h) as c:
        t0 = time.monotonic()
        await c.subscribe(["AAPL"])
        msg = await c.ended()
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1000
        assert 0.04 <= time.monotonic() - t0 < 2.0
    s = h.stats()["streamer"]
    assert s["closes"] == {"fault_close": 1} and s["faults"] == {"close": 1}


async def test_fault_abort_has_no_close_frame(make_emu: MakeEmu) -> None:
    knobs = {**QUIET, "stream_fault_abort": 1.0, "stream_fault_after_s": 0.1}
    async with make_emu(**knobs) as h, open_stream(h) as c:
        await c.subscribe(["AAPL"])
        msg = await c.ended()
        assert msg.type is not aiohttp.WSMsgType.CLOSE and c.ws.close_code in (None, 1006)
    assert h.stats()["streamer"]["closes"] == {"fault_abort": 1}


async def test_fault_stall_is_open_and_mute(make_emu: MakeEmu) -> None:
    """After the stall nothing comes, although the clock moves and the pump runs; the socket
    still answers pings, so only a data watchdog notices."""
    clock = FakeClock()
    knobs = {**QUIET, "stream_fault_stall": 1.0, "stream_fault_after_s": 0.05}
    async with make_emu(clock=clock, **knobs) as h, open_stream(h, autoping=False) as c:
        await c.subscribe(["AAPL"])
        await c.frames(1)
        while not h.stats()["streamer"]["faults"]:
            await c.ws.ping(b"wait")  # one round trip at a time until the stall struck
            assert (await c.ws.receive(timeout=2)).type is aiohttp.WSMsgType.PONG
        for _ in range(10):
            clock.advance(1)
            h.emu.emulator.streamer.tick()
        await c.subscribe(["MSFT"])  # no snapshot either
        await c.ws.ping(b"alive")
        msg = await c.ws.receive(timeout=2)
        assert msg.type is aiohttp.WSMsgType.PONG and msg.data == b"alive"
        s = h.stats()["streamer"]
        assert s["frames_sent"] == 1 and s["faults"] == {"stall": 1} and s["connections_open"] == 1


async def test_idle_socket_is_closed_unless_the_client_speaks(make_emu: MakeEmu) -> None:
    """Client frames every 0.15 s keep it open past the 0.3 s limit; pings do not count."""
    async with make_emu(stream_idle_close_s=0.3, **QUIET) as h, open_stream(h) as c:
        t0 = time.monotonic()
        await c.subscribe(["AAPL"])
        await c.frames(1)
        for _ in range(3):
            await c.silent(0.15)
            await c.subscribe(["AAPL"])
        last = time.monotonic()
        while True:  # pinging all along does not keep it open
            await c.ws.ping()
            with contextlib.suppress(TimeoutError):
                msg = await c.ws.receive(timeout=0.05)
                break
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1000
        assert time.monotonic() - last >= 0.25 and time.monotonic() - t0 >= 0.7
    assert h.stats()["streamer"]["closes"] == {"idle": 1}


async def test_garbage_frames_raise_in_the_codec(make_emu: MakeEmu) -> None:
    async with make_emu(stream_fault_garbage=1.0, **QUIET) as h, open_stream(h) as c:
        await c.subscribe(["AAPL", "MSFT", "NVDA", "JPM", "XOM", "KO"])
        good = bad = 0
        reasons = set()
        while good < 6:
            try:
                p = decode_frame(await c.text())
            except StreamFrameError as exc:
                bad += 1
                reasons.add(exc.reason)
            else:
                assert p is not None
                good += 1
        assert bad == 6 == h.stats()["streamer"]["faults"]["garbage"]
        assert len(reasons) >= 2


async def test_unknown_type_frames_are_ignored_by_the_codec(make_emu: MakeEmu) -> None:
    async with make_emu(stream_fault_unknown_type=1.0, **QUIET) as h, open_stream(h) as c:
        await c.subscribe(["AAPL", "MSFT"])
        decoded = [decode_frame(await c.text()) for _ in range(4)]
        assert decoded[0] is None and decoded[2] is None
        assert [p.symbol for p in decoded if p is not None] == ["AAPL", "MSFT"]
        assert h.stats()["streamer"]["faults"] == {"unknown_type": 2}


async def test_stale_snapshot(make_emu: MakeEmu) -> None:
    """The snapshot is an hour older than v7's quote and carries the previous close."""
    knobs = {**QUIET, "stream_fault_stale_snapshot": 1.0, "stale_age_s": 3600.0}
    async with make_emu(clock=FakeClock(), **knobs) as h, open_stream(h) as c:
        await h.login()
        await c.subscribe(["AAPL"])
        (p,) = await c.frames(1)
        (q,) = await h.quotes("AAPL")
        assert p.time_ms == (q["regularMarketTime"] - 3600) * 1000
        assert p.price == pytest.approx(q["regularMarketPreviousClose"], rel=1e-6)
        assert h.stats()["streamer"]["faults"] == {"stale_snapshot": 1}


async def test_trigger_strikes_live_connections_now(make_emu: MakeEmu) -> None:
    async with make_emu(**QUIET) as h, open_stream(h) as a, open_stream(h) as b:
        await a.subscribe(["AAPL"])
        await b.subscribe(["MSFT"])
        await a.frames(1)
        await b.frames(1)
        r = await h.post("/_emulator/stream/fault", {"kind": "abort"})
        assert r.status == 200 and r.json() == {"struck": [1]}
        assert (await a.ended()).type is not aiohttp.WSMsgType.CLOSE
        r = await h.post("/_emulator/stream/fault", {"kind": "garbage", "count": 5})
        assert r.json() == {"struck": [2]}
        with pytest.raises(StreamFrameError):
            decode_frame(await b.text())
        r = await h.post("/_emulator/stream/fault", {"kind": "close"})
        assert r.json() == {"struck": [2]}
        assert (await b.ended()).data == 1000
        for bad in ({"kind": "melt"}, {"kind": "close", "count": 0}, [1]):
            r = await h.post("/_emulator/stream/fault", bad)
            assert r.status == 400 and "error" in r.json()
        s = h.stats()["streamer"]
        assert s["closes"] == {"fault_abort": 1, "fault_close": 1}
        assert s["faults"] == {"abort": 1, "garbage": 1, "close": 1}


async def test_shutdown_closes_sockets(make_emu: MakeEmu) -> None:
    async with make_emu(**QUIET) as h:
        ws = await h.http.ws_connect(h.emu.stream_url)
        await ws.send_str('{"subscribe": ["AAPL"]}')
        assert (await ws.receive(timeout=3)).type is aiohttp.WSMsgType.TEXT
    msg = await ws.receive(timeout=3)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.close()


async def test_reset_zeroes_the_counters(make_emu: MakeEmu) -> None:
    async with make_emu(**QUIET) as h, open_stream(h) as c:
        await c.subscribe(["AAPL"])
        await c.frames(1)
        assert (await h.post("/_emulator/reset")).status == 200
        s = h.stats()["streamer"]
        assert s["frames_sent"] == 0 and s["frames_by_symbol"] == {}
        assert s["connections_open"] == 1  # live state, not a counter


async def test_knobs_on_the_cli_and_at_runtime(make_emu: MakeEmu) -> None:
    ns = build_parser().parse_args(
        ["--stream-refuse-status", "503", "--stream-max-symbols", "5", "--stream-fault-stall", "1"]
    )
    cfg = config_from_args(ns)
    assert (cfg.stream_refuse_status, cfg.stream_max_symbols, cfg.stream_fault_stall) == (
        503,
        5,
        1.0,
    )
    async with make_emu() as h:
        r = await h.post("/_emulator/config", {"stream_refuse_status": 500})
        assert r.status == 400 and "stream_refuse_status" in r.json()["error"]
        r = await h.post("/_emulator/config", {"stream_min_gap_s": 9.0})
        assert r.status == 400 and "stream_max_gap_s" in r.json()["error"]
        r = await h.post("/_emulator/config", {"stream_max_symbols": 2})
        assert r.status == 200 and r.json()["stream_max_symbols"] == 2
