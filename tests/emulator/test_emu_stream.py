"""The websocket streamer: snapshots, the per-connection cap, cumulative subscriptions, malformed
client frames, cadence and sessions, and frames that agree with v7 at the same second.

Most tests freeze the emulator clock (FakeClock), park the pump (``stream_pump_s`` 10 s) and
drive it by hand (``tick``): each step is exact and the test awaits the frames a tick queued."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest

from engine.source.stream.frames import decode_frame
from engine.source.stream.pricing import MarketHours, Pricing, QuoteType, float32_value
from tests.emulator.conftest import FakeClock, Harness, MakeEmu, et
from tests.emulator.streaming import open_stream
from tests.unit.source.stream import wire
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.state import Emulator
from yahoo_emulator.universe import load_universe

pytestmark = pytest.mark.timeout(30)

MANUAL: dict[str, Any] = {"stream_pump_s": 10.0, "stream_same_time": 0.0, "stream_components": 0.0}
LIQUID = ["AAPL", "MSFT", "NVDA", "JPM"]


def tick(h: Harness) -> int:
    return h.emu.emulator.streamer.tick()


def listed(n: int, *, max_volume: int | None = None) -> list[str]:
    u = load_universe()
    delisted = {"BRKS", "SI", "SIMP"}
    out = [
        s
        for s, v in zip(u.symbols, u.volume.tolist(), strict=True)
        if s not in delisted and (max_volume is None or 0 < v < max_volume)
    ]
    return out[:n]


def f32(x: float) -> float:
    return float32_value(float(x))


async def assert_match_v7(h: Harness, frames: list[Pricing]) -> None:
    """Each frame carries what v7 says now (the clock has not moved since it was sent)."""
    quotes = {q["symbol"]: q for q in await h.quotes([p.symbol for p in frames])}
    for p in frames:
        q = quotes[p.symbol]
        assert p.time_ms == q["regularMarketTime"] * 1000, p.symbol
        assert p.price == f32(q["regularMarketPrice"]), p.symbol
        assert p.day_volume == q["regularMarketVolume"], p.symbol
        assert p.change == pytest.approx(q["regularMarketChange"], rel=1e-6, abs=1e-5)
        pct = q["regularMarketChangePercent"]  # v7 rounds to 6 decimals
        assert p.change_percent == pytest.approx(pct, rel=1e-5, abs=1e-6)
        if p.day_high is not None:
            assert p.day_high == f32(q["regularMarketDayHigh"])
        if p.day_low is not None:
            assert p.day_low == f32(q["regularMarketDayLow"])


class TestSnapshots:
    async def test_snapshot_on_subscribe(self, make_emu: MakeEmu) -> None:
        """One snapshot per new known symbol: an equity frame with no currency, open or
        previous close, but with the day's high and low."""
        async with make_emu(clock=FakeClock(), **MANUAL) as h, open_stream(h) as c:
            await c.subscribe(["AAPL", "MSFT"])
            snaps = await c.frames(2)
            assert [p.symbol for p in snaps] == ["AAPL", "MSFT"]
            for p in snaps:
                assert p.market_hours == MarketHours.REGULAR and p.quote_type == QuoteType.EQUITY
                assert p.exchange == "NMS" and p.price_hint == 2
                assert p.currency is None and p.open_price is None and p.previous_close is None
                assert p.day_high is not None and p.day_low is not None
                assert p.time_ms is not None and p.time_ms % 1000 == 0
            s = h.stats()["streamer"]
            assert s["snapshots_sent"] == s["frames_sent"] == 2 and s["connections_opened"] == 1

    async def test_frames_match_v7_at_the_same_second(self, make_emu: MakeEmu) -> None:
        clock = FakeClock()
        async with make_emu(clock=clock, **MANUAL) as h, open_stream(h) as c:
            await h.login()
            await c.subscribe(LIQUID)
            await assert_match_v7(h, await c.frames(len(LIQUID)))
            updates = 0
            for _ in range(12):
                clock.advance(1)
                frames = await c.frames(tick(h))
                updates += len(frames)
                if frames:
                    await assert_match_v7(h, frames)
            assert updates >= len(LIQUID) * 2

    async def test_the_frame_reads_the_same_with_yfinance(self, make_emu: MakeEmu) -> None:
        """yfinance's own generated class decodes the emulator's frames to the same values."""
        pricing_pb2 = pytest.importorskip("yfinance.pricing_pb2")
        async with make_emu(clock=FakeClock(), **MANUAL) as h, open_stream(h) as c:
            await c.subscribe(["AAPL"])
            text = await c.text()
            mine = decode_frame(text)
            raw = base64.b64decode(orjson.loads(text)["message"])
            theirs = pricing_pb2.PricingData.FromString(raw)
            assert mine is not None and theirs.id == mine.symbol == "AAPL"
            assert theirs.time == mine.time_ms and theirs.day_volume == mine.day_volume
            assert f32(theirs.price) == mine.price and theirs.market_hours == 1

    async def test_closed_market_snapshot_is_old_and_nothing_follows(
        self, make_emu: MakeEmu
    ) -> None:
        clock = FakeClock(et(2026, 11, 28, 12, 0))  # a Saturday
        async with make_emu(clock=clock, **MANUAL) as h, open_stream(h) as c:
            await c.subscribe(["AAPL"])
            (snap,) = await c.frames(1)
            assert snap.time_ms == et(2026, 11, 27, 16, 0) * 1000  # Friday's close
            for _ in range(30):
                clock.advance(60)
                assert tick(h) == 0
            await c.silent(0.1)
            assert h.stats()["streamer"]["frames_sent"] == 1


class TestSubscriptions:
    async def test_cap_of_100_first_come_first_served(self, make_emu: MakeEmu) -> None:
        """150 symbols give exactly 100 snapshots, the first 100; more are dropped without a
        word until an unsubscribe frees a slot."""
        syms = listed(120)
        async with make_emu(clock=FakeClock(), **MANUAL) as h, open_stream(h) as c:
            await c.subscribe(syms[:100] + syms[100:110] + syms[:100][:40])
            assert [p.symbol for p in await c.frames(100)] == syms[:100]
            await c.subscribe(syms[110:115])  # full: dropped
            await c.unsubscribe([syms[0]])
            await c.subscribe([syms[115]])
            (nxt,) = await c.frames(1)  # had the extras been sent, they would come first
            assert nxt.symbol == syms[115]
            s = h.stats()["streamer"]
            assert s["symbols_dropped"] == 15 and s["symbols_subscribed"] == 100
            assert s["subscribe_frames"] == 3 and s["unsubscribe_frames"] == 1

    async def test_unknown_symbols_use_up_slots(self, make_emu: MakeEmu) -> None:
        async with (
            make_emu(clock=FakeClock(), stream_max_symbols=3, **MANUAL) as h,
            open_stream(h) as c,
        ):
            await c.subscribe(["NOPE1", "AAPL", "BRKS", "MSFT"])  # BRKS is delisted
            (p,) = await c.frames(1)
            assert p.symbol == "AAPL"
            await c.unsubscribe(["NOPE1", "NEVER-SUBSCRIBED"])
            await c.subscribe(["NVDA"])
            assert [p.symbol for p in await c.frames(1)] == ["NVDA"]
            s = h.stats()["streamer"]
            assert s["symbols_unknown"] == 2 and s["symbols_dropped"] == 1

    async def test_subscribe_is_cumulative_and_resending_is_a_no_op(
        self, make_emu: MakeEmu
    ) -> None:
        async with make_emu(clock=FakeClock(), **MANUAL) as h, open_stream(h) as c:
            await c.subscribe(["aapl"])
            await c.subscribe(["AAPL", "MSFT"])  # the whole set again, plus one
            assert [p.symbol for p in await c.frames(2)] == ["AAPL", "MSFT"]
            await c.unsubscribe(["MSFT"])
            await c.subscribe(["AAPL", "MSFT"])  # MSFT is new again: a snapshot
            assert [p.symbol for p in await c.frames(1)] == ["MSFT"]
            assert h.stats()["streamer"]["snapshots_sent"] == 3

    async def test_subscribers_share_a_symbol(self, make_emu: MakeEmu) -> None:
        """Two connections on one symbol get the same updates; one leaving keeps the other's."""
        clock = FakeClock()
        async with (
            make_emu(clock=clock, **MANUAL) as h,
            open_stream(h) as a,
            open_stream(h) as b,
        ):
            await a.subscribe(["AAPL"])
            await b.subscribe(["AAPL"])
            await a.frames(1)
            await b.frames(1)
            await a.unsubscribe(["AAPL"])
            await a.subscribe(["MSFT"])
            await a.frames(1)  # the unsubscribe was processed
            counts = h.stats()["streamer"]["frames_by_symbol"]
            while counts["AAPL"] == 2:
                clock.advance(1)
                tick(h)
                counts = h.stats()["streamer"]["frames_by_symbol"]
            assert counts["AAPL"] == 3  # to b only
            assert [p.symbol for p in await b.frames(1)] == ["AAPL"]
            msft = [p.symbol for p in await a.frames(counts.get("MSFT", 1) - 1)]
            assert msft == ["MSFT"] * len(msft)

    @pytest.mark.parametrize(
        "text",
        [
            "not json",
            "[]",
            '{"subscribe": "AAPL"}',
            '{"subscribe": null}',
            '{"subscribe": [null]}',
            '{"subscribe": ["AAPL", 5]}',
            '{"unsubscribe": [null]}',
            '{"subscribe": ["AAPL"], "heartbeat": 1}',
        ],
    )
    async def test_malformed_frame_closes_without_status(
        self, make_emu: MakeEmu, text: str
    ) -> None:
        async with make_emu(clock=FakeClock(), **MANUAL) as h, open_stream(h) as c:
            await c.ws.send_str(text)
            msg = await c.ended()
            assert msg.type is not aiohttp.WSMsgType.CLOSE  # no close frame, no status
            assert c.ws.close_code in (None, 1006)
        assert h.stats()["streamer"]["closes"] == {"malformed": 1}

    async def test_binary_frame_closes(self, make_emu: MakeEmu) -> None:
        async with make_emu(clock=FakeClock(), **MANUAL) as h, open_stream(h) as c:
            await c.ws.send_bytes(b'{"subscribe": ["AAPL"]}')
            assert (await c.ended()).type is not aiohttp.WSMsgType.CLOSE
        assert h.stats()["streamer"]["closes"] == {"malformed": 1}

    async def test_empty_frames_are_accepted(self, make_emu: MakeEmu) -> None:
        async with make_emu(clock=FakeClock(), **MANUAL) as h, open_stream(h) as c:
            for text in ("{}", '{"subscribe": []}', '{"unsubscribe": ["NOPE"]}'):
                await c.ws.send_str(text)
            await c.subscribe(["AAPL"])
            assert [p.symbol for p in await c.frames(1)] == ["AAPL"]


class TestCadence:
    async def test_liquid_every_1_to_5_s_illiquid_rarely(self, make_emu: MakeEmu) -> None:
        (illiquid,) = listed(1, max_volume=100_000)
        clock = FakeClock()
        async with make_emu(clock=clock, **MANUAL) as h, open_stream(h) as c:
            await c.subscribe(["AAPL", illiquid])
            await c.frames(2)
            times: dict[str, list[int]] = {"AAPL": [], illiquid: []}
            for _ in range(300):
                clock.advance(1)
                for p in await c.frames(tick(h)):
                    assert p.time_ms is not None
                    times[p.symbol].append(p.time_ms)
            gaps = set(np.diff(times["AAPL"]).tolist())
            assert gaps <= {1000, 2000, 3000, 4000, 5000} and len(gaps) >= 3
            assert len(times["AAPL"]) >= 300 / 5
            assert 1 <= len(times[illiquid]) <= 4  # 90-270 s apart

    async def test_day_high_and_low_only_when_they_change(self, make_emu: MakeEmu) -> None:
        """From just before the open (where high and low restart at the open price) through
        two minutes of trading: each frame carries a high or low exactly when it moved."""
        clock = FakeClock(et(2026, 11, 25, 9, 29, 55))
        async with make_emu(clock=clock, **MANUAL) as h, open_stream(h) as c:
            await h.login()
            await c.subscribe(["NVDA"])
            (snap,) = await c.frames(1)
            hi, lo = snap.day_high, snap.day_low
            changes = 0
            for _ in range(120):
                clock.advance(1)
                for p in await c.frames(tick(h)):
                    (q,) = await h.quotes("NVDA")
                    now_hi, now_lo = f32(q["regularMarketDayHigh"]), f32(q["regularMarketDayLow"])
                    assert p.day_high == (now_hi if now_hi != hi else None)
                    assert p.day_low == (now_lo if now_lo != lo else None)
                    changes += (p.day_high is not None) + (p.day_low is not None)
                    hi, lo = now_hi, now_lo
            assert changes >= 4

    async def test_same_time_two_volumes(self, make_emu: MakeEmu) -> None:
        """With stream_same_time every update is two frames of one time, the first with less
        volume; the second is what v7 says."""
        clock = FakeClock()
        knobs = {**MANUAL, "stream_same_time": 1.0}
        async with make_emu(clock=clock, **knobs) as h, open_stream(h) as c:
            await h.login()
            await c.subscribe(["AAPL"])
            await c.frames(1)
            pair: list[Pricing] = []
            while not pair:
                clock.advance(1)
                pair = await c.frames(tick(h))
            first, second = pair
            assert first.time_ms == second.time_ms and first.price == second.price
            assert first.day_volume is not None and second.day_volume is not None
            assert first.day_volume < second.day_volume
            await assert_match_v7(h, [second])

    @pytest.mark.parametrize(
        ("hour", "hours", "v7_prefix"),
        [(8, MarketHours.PRE, "preMarket"), (17, MarketHours.POST, "postMarket")],
    )
    async def test_extended_hours_frames(
        self, make_emu: MakeEmu, hour: int, hours: MarketHours, v7_prefix: str
    ) -> None:
        """Before and after the session: the extended-hours price and time, the change from the
        regular close, no day volume; a pre-market frame carries no market_hours at all."""
        clock = FakeClock(et(2026, 11, 25, hour, 0))
        async with make_emu(clock=clock, **MANUAL) as h, open_stream(h) as c:
            await h.login()
            await c.subscribe(["AAPL"])
            (snap,) = await c.frames(1)  # nothing traded yet this session: the close
            assert snap.market_hours == MarketHours.REGULAR
            texts: list[str] = []
            while not texts:
                clock.advance(1)
                texts = [await c.text() for _ in range(tick(h))]
            p = decode_frame(texts[0])
            assert p is not None and p.market_hours == hours and p.day_volume is None
            raw = base64.b64decode(orjson.loads(texts[0])["message"])
            assert (7 in wire.read_fields(raw)) is (hours != MarketHours.PRE)
            (q,) = await h.quotes("AAPL")
            assert p.time_ms == q[f"{v7_prefix}Time"] * 1000
            assert p.price == f32(q[f"{v7_prefix}Price"])
            assert p.change == pytest.approx(q[f"{v7_prefix}Change"], abs=1e-4)

    async def test_components_field_is_sent_and_skipped(self, make_emu: MakeEmu) -> None:
        knobs = {**MANUAL, "stream_components": 1.0}
        async with make_emu(clock=FakeClock(), **knobs) as h, open_stream(h) as c:
            await c.subscribe(["AAPL"])
            text = await c.text()
            raw = base64.b64decode(orjson.loads(text)["message"])
            assert wire.read_fields(raw)[34] == [b"AAPL"]
            p = decode_frame(text)
            assert p is not None and p.symbol == "AAPL"


async def test_pump_runs_on_the_emulator_clock(make_emu: MakeEmu) -> None:
    """Without manual ticks: the pump sends updates as the clock moves, and nothing while it
    stands still."""
    clock = FakeClock()
    knobs = {**MANUAL, "stream_pump_s": 0.02}
    async with make_emu(clock=clock, **knobs) as h, open_stream(h) as c:
        await c.subscribe(["AAPL"])
        await c.frames(1)
        await c.silent(0.15)
        clock.advance(6)  # past the longest gap
        (p,) = await c.frames(1)
        assert p.symbol == "AAPL" and p.time_ms == int(clock.t) * 1000


def test_feed_membership_is_reference_counted() -> None:
    """Removing a symbol from the middle keeps the others' state attached to them (the last
    entry moves into the hole); a symbol leaves only with its last subscriber."""
    clock = FakeClock()
    emu = Emulator(EmulatorConfig(**MANUAL), clock=clock)
    feed = emu.streamer.feed
    m = emu.market
    now = emu.now()
    m.sync(now)
    for sym in ("AAPL", "MSFT", "NVDA", "AAPL"):
        feed.add(sym, m.position(sym), now, emu.cfg)
    feed.remove("MSFT")
    feed.remove("AAPL")
    assert len(feed) == 2 and "AAPL" in feed and "MSFT" not in feed
    feed.remove("AAPL")
    assert len(feed) == 1 and "AAPL" not in feed
    seen: set[str] = set()
    for _ in range(10):
        clock.advance(1)
        now = emu.now()
        m.sync(now)
        for sym, texts in feed.updates(now, emu.cfg):
            p = decode_frame(texts[-1])
            assert p is not None and p.symbol == sym
            assert p.price == f32(m.reg_px[m.position(sym)])
            seen.add(sym)
    assert seen == {"NVDA"}
