"""Market clock and price walks: states, sessions, market time semantics, determinism."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import SYMBOLS, FakeClock, MakeEmu, et
from yahoo_emulator.market import clock_state, last_close, tz_info

FIELDS = "regularMarketVolume,regularMarketPreviousClose,regularMarketChangePercent"


@pytest.mark.parametrize(
    ("when", "state"),
    [
        (et(2026, 11, 25, 3, 59, 59), "CLOSED"),
        (et(2026, 11, 25, 4, 0), "PRE"),
        (et(2026, 11, 25, 9, 29, 59), "PRE"),
        (et(2026, 11, 25, 9, 30), "REGULAR"),
        (et(2026, 11, 25, 15, 59, 59), "REGULAR"),
        (et(2026, 11, 25, 16, 0), "POST"),
        (et(2026, 11, 25, 19, 59), "POST"),
        (et(2026, 11, 25, 20, 0), "CLOSED"),
        (et(2026, 11, 28, 11, 0), "CLOSED"),  # Saturday
        (et(2026, 11, 29, 11, 0), "CLOSED"),  # Sunday
        (et(2026, 7, 15, 9, 45), "REGULAR"),  # summer time
    ],
)
def test_clock_state(when: float, state: str) -> None:
    assert clock_state(when) == state


def test_last_close_and_timezone() -> None:
    assert last_close(et(2026, 11, 25, 11, 0)) == et(2026, 11, 24, 16, 0)
    assert last_close(et(2026, 11, 25, 16, 0)) == et(2026, 11, 25, 16, 0)
    assert last_close(et(2026, 11, 30, 8, 0)) == et(2026, 11, 27, 16, 0)  # Monday pre -> Friday
    assert tz_info(et(2026, 11, 25, 11, 0)) == ("EST", -18000)
    assert tz_info(et(2026, 7, 15, 11, 0)) == ("EDT", -14400)


async def test_regular_prices_move_and_market_time_is_the_last_trade(make_emu: MakeEmu) -> None:
    clock = FakeClock()
    async with make_emu(clock=clock, seed=5) as h:
        await h.login()
        before = {q["symbol"]: q for q in await h.quotes(SYMBOLS, fields=FIELDS)}
        assert all(q["marketState"] == "REGULAR" for q in before.values())
        moved = traded_flat = 0
        for _ in range(30):
            clock.advance(1)
            now = {q["symbol"]: q for q in await h.quotes(SYMBOLS, fields=FIELDS)}
            for s, q in now.items():
                b = before[s]
                if q["regularMarketTime"] == b["regularMarketTime"]:  # no trade: same quote
                    assert q["regularMarketPrice"] == b["regularMarketPrice"]
                    assert q["regularMarketVolume"] == b["regularMarketVolume"]
                    continue
                assert b["regularMarketTime"] < q["regularMarketTime"] <= clock.t
                assert q["regularMarketVolume"] >= b["regularMarketVolume"]
                if q["regularMarketPrice"] != b["regularMarketPrice"]:
                    moved += 1
                else:
                    traded_flat += 1
            before = now
        assert moved > 30  # liquid names trade nearly every tick
        assert traded_flat > 0  # a trade at the same price is a new quote too


async def test_full_change_moves_every_price_every_tick(make_emu: MakeEmu) -> None:
    clock = FakeClock()
    async with make_emu(clock=clock, seed=5, full_change=True) as h:
        await h.login()
        before = await h.quotes(SYMBOLS, fields=FIELDS)
        for _ in range(5):
            clock.advance(1)
            now = await h.quotes(SYMBOLS, fields=FIELDS)
            for b, q in zip(before, now, strict=True):
                assert q["regularMarketPrice"] != b["regularMarketPrice"], q["symbol"]
                assert q["regularMarketTime"] == int(clock.t) > b["regularMarketTime"]
                assert q["regularMarketVolume"] >= b["regularMarketVolume"]
                assert q["regularMarketPrice"] > 0
            before = now


async def test_freeze_keeps_everything(make_emu: MakeEmu) -> None:
    clock = FakeClock()
    async with make_emu(clock=clock, freeze=True) as h:
        await h.login()
        a = await h.quotes(SYMBOLS, fields=FIELDS)
        clock.advance(3600)
        b = await h.quotes(SYMBOLS, fields=FIELDS)
        assert a == b


async def test_same_seed_same_schedule_same_prices(make_emu: MakeEmu) -> None:
    runs = []
    for _ in range(2):
        clock = FakeClock()
        async with make_emu(clock=clock, seed=42) as h:
            await h.login()
            seen = []
            for _ in range(5):
                clock.advance(7)
                seen.append(await h.quotes([*SYMBOLS, "AAPL.X7"], fields=FIELDS))
            runs.append(seen)
    assert runs[0] == runs[1]
    clock = FakeClock()
    async with make_emu(clock=clock, seed=43) as h:
        await h.login()
        clock.advance(35)
        other = await h.quotes(SYMBOLS, fields=FIELDS)
    assert [q["regularMarketPrice"] for q in other] != [
        q["regularMarketPrice"] for q in runs[0][-1][:5]
    ]


async def test_post_pre_and_new_session(make_emu: MakeEmu) -> None:
    clock = FakeClock(et(2026, 11, 25, 15, 59, 0))
    async with make_emu(clock=clock, seed=9) as h:
        await h.login()
        (reg,) = await h.quotes("AAPL")
        assert reg["marketState"] == "REGULAR"
        clock.t = et(2026, 11, 25, 16, 30)
        (post,) = await h.quotes("AAPL")
        assert post["marketState"] == "POST"
        assert post["regularMarketTime"] == et(2026, 11, 25, 16, 0)  # the close, not now
        close = post["regularMarketPrice"]
        clock.advance(600)
        (post2,) = await h.quotes("AAPL")
        assert post2["regularMarketPrice"] == close  # regular price frozen after the close
        assert "postMarketPrice" in post2 and post2["postMarketTime"] > post2["regularMarketTime"]
        assert post2["postMarketChange"] == pytest.approx(
            post2["postMarketPrice"] - close, abs=1e-4
        )
        clock.t = et(2026, 11, 26, 8, 0)
        (pre,) = await h.quotes("AAPL")
        assert pre["marketState"] == "PRE" and "postMarketPrice" not in pre
        clock.advance(900)
        (pre2,) = await h.quotes("AAPL")
        assert pre2["regularMarketTime"] == et(2026, 11, 25, 16, 0)
        assert "preMarketPrice" in pre2
        clock.t = et(2026, 11, 26, 9, 31)
        (new,) = await h.quotes("AAPL")
        assert new["marketState"] == "REGULAR"
        assert new["regularMarketPreviousClose"] == close
        assert new["regularMarketOpen"] == pre2["preMarketPrice"]
        assert new["regularMarketVolume"] < reg["regularMarketVolume"]


async def test_forced_states_and_weekend(make_emu: MakeEmu) -> None:
    clock = FakeClock(et(2026, 11, 28, 12, 0))  # Saturday
    async with make_emu(clock=clock) as h:
        await h.login()
        (q,) = await h.quotes("AAPL")
        assert q["marketState"] == "CLOSED"
        assert q["regularMarketTime"] == et(2026, 11, 27, 16, 0)
        for state in ("PREPRE", "PRE", "REGULAR", "POST", "POSTPOST", "CLOSED"):
            h.emu.configure(market_state=state)
            (q,) = await h.quotes("AAPL")
            assert q["marketState"] == state
        h.emu.configure(market_state="REGULAR")
        clock.advance(30)
        (q,) = await h.quotes("AAPL")
        assert clock.t - 30 <= q["regularMarketTime"] <= clock.t


async def test_time_offset_moves_the_clock(make_emu: MakeEmu) -> None:
    clock = FakeClock(et(2026, 11, 25, 21, 0))
    async with make_emu(clock=clock) as h:
        await h.login()
        assert (await h.quotes("AAPL"))[0]["marketState"] == "CLOSED"
        h.emu.configure(time_offset_s=14 * 3600)  # -> 11:00 next day
        assert (await h.quotes("AAPL"))[0]["marketState"] == "REGULAR"
