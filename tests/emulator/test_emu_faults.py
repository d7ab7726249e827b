"""Every fault kind is actually produced; rate limiting; reproducibility from the seed."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from tests.emulator.conftest import SYMBOLS, FakeClock, Harness, MakeEmu
from yahoo_emulator.config import INVALID_KINDS, POISON_KINDS

pytestmark = pytest.mark.fault


async def test_fault_5xx(h: Harness) -> None:
    h.emu.configure(fault_5xx=1.0)
    statuses = {(await h.quote(SYMBOLS)).status for _ in range(30)}
    assert statuses <= {500, 502, 503, 504} and len(statuses) > 1
    assert h.stats()["faults"]["http_5xx"] == 30


async def test_fault_500_is_a_json_envelope(h: Harness) -> None:
    h.emu.configure(fault_5xx=1.0)
    for _ in range(30):
        r = await h.quote(SYMBOLS)
        if r.status == 500:
            assert r.json()["finance"]["error"]["code"] == "Internal Server Error"
            return
    pytest.fail("no 500 in 30 draws")


@pytest.mark.parametrize("status", [200, 503])
async def test_fault_html_outage(h: Harness, status: int) -> None:
    h.emu.configure(fault_html=1.0, fault_html_status=status)
    r = await h.quote(SYMBOLS)
    assert r.status == status and b"Will be right back" in r.body
    assert r.headers["Content-Type"].startswith("text/html")
    r = await h.chart("AAPL", range="1d", interval="1d")
    assert b"Will be right back" in r.body
    assert h.stats()["faults"]["html_outage"] == 2


async def test_fault_truncated_json(h: Harness) -> None:
    h.emu.configure(fault_truncate=1.0)
    r = await h.quote(SYMBOLS)
    assert r.status == 200 and r.headers["Content-Type"] == "application/json;charset=utf-8"
    assert int(r.headers["Content-Length"]) == len(r.body)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(r.body)
    assert h.stats()["faults"]["truncated_json"] == 1


async def test_fault_connection_reset(h: Harness) -> None:
    h.emu.configure(fault_reset=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await h.quote(SYMBOLS)
    h.emu.configure(fault_reset=0.0)
    assert (await h.quote(SYMBOLS)).status == 200
    s = h.stats()
    # aiohttp retries once when a reused keep-alive connection is dropped, hence >= 1
    assert s["faults"]["connection_reset"] == s["requests"]["quote"]["0"] >= 1


async def test_fault_stall_hangs_then_answers(h: Harness) -> None:
    """A stalled request is answered normally, but only after ``stall_s``: a client with a
    shorter timeout gives up first."""
    h.emu.configure(fault_stall=1.0, stall_s=0.4)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(h.quote(SYMBOLS), 0.1)
    t0 = time.perf_counter()
    r = await h.quote(SYMBOLS)
    assert r.status == 200 and len(r.json()["quoteResponse"]["result"]) == len(SYMBOLS)
    assert time.perf_counter() - t0 >= 0.4
    assert h.stats()["faults"]["stalled"] >= 1
    h.emu.configure(fault_stall=0.0)
    t0 = time.perf_counter()
    assert (await h.quote(SYMBOLS)).status == 200
    assert time.perf_counter() - t0 < 0.4


@pytest.mark.parametrize("kind", INVALID_KINDS)
async def test_fault_invalid_single_quote(h: Harness, kind: str) -> None:
    h.emu.configure(fault_invalid_quote=1.0, invalid_kinds=[kind])
    result = await h.quotes(SYMBOLS, fields="regularMarketVolume")
    assert len(result) == len(SYMBOLS)

    def bad(q: dict[str, object]) -> bool:
        price, t, vol = q["regularMarketPrice"], q["regularMarketTime"], q["regularMarketVolume"]
        return (
            isinstance(price, str)
            or isinstance(t, str)
            or (isinstance(vol, int) and vol < 0)
            or price == 0
            or (isinstance(price, float) and price > 1e8)
        )

    assert sum(bad(q) for q in result) == 1
    assert h.stats()["faults"]["invalid_quote"] == 1


async def test_fault_stale_quote_in_regular(make_emu: MakeEmu) -> None:
    clock = FakeClock()
    async with make_emu(clock=clock, fault_stale_quote=1.0, stale_age_s=900) as h:
        await h.login()
        result = await h.quotes(SYMBOLS)
        ages = sorted(clock.t - q["regularMarketTime"] for q in result)
        assert ages[-1] == pytest.approx(900, abs=1) and ages[-2] < 60
        assert h.stats()["faults"]["stale_quote"] == 1


async def test_fault_crumb_text(make_emu: MakeEmu) -> None:
    async with make_emu(fault_crumb_text=1.0) as h:
        await h.get("/")
        r = await h.get("/v1/test/getcrumb")
        assert r.status == 200 and r.body == b"Too Many Requests\r\n"
        assert h.stats()["faults"]["crumb_text"] == 1


async def test_fault_429_storm_on_and_off(h: Harness) -> None:
    h.emu.configure(fault_429=1.0)
    for path in ("/", "/v1/test/getcrumb"):
        r = await h.get(path)
        assert r.status == 429 and r.body == b"Too Many Requests\r\n"
    r = await h.quote(SYMBOLS)
    assert r.status == 429 and "Retry-After" not in r.headers
    h.emu.configure(fault_429=0.0, retry_after_s=30, rate_limit_body="Edge: Too Many Requests")
    assert (await h.quote(SYMBOLS)).status == 200
    h.emu.configure(fault_429=1.0)
    r = await h.quote(SYMBOLS)
    assert r.headers["Retry-After"] == "30" and r.body == b"Edge: Too Many Requests"
    s = h.stats()
    assert s["rate_limited"] == 4 and s["faults"]["rate_limit_storm"] == 4


async def test_fault_endpoints_scope(h: Harness) -> None:
    h.emu.configure(fault_5xx=1.0, fault_endpoints=["chart"])
    assert (await h.quote(SYMBOLS)).status == 200
    assert (await h.chart("AAPL", range="1d", interval="1d")).status >= 500


async def test_token_bucket_then_recovery(make_emu: MakeEmu) -> None:
    clock = FakeClock()
    async with make_emu(clock=clock, rate_limit_rps=2.0, rate_limit_burst=3) as h:
        await h.login()  # 2 requests
        assert (await h.quote("AAPL")).status == 200  # third token
        r = await h.quote("AAPL")
        assert r.status == 429 and r.body == b"Too Many Requests\r\n"
        clock.advance(0.4)  # 0.8 token
        assert (await h.quote("AAPL")).status == 429
        clock.advance(0.2)  # 1.2 tokens (the 429s did not spend any)
        assert (await h.quote("AAPL")).status == 200
        clock.advance(10)  # refills to the burst, not beyond
        assert [(await h.quote("AAPL")).status for _ in range(4)] == [200, 200, 200, 429]
        assert h.stats()["rate_limited"] == 3


async def test_latency_is_injected_and_logged(make_emu: MakeEmu, tmp_path: object) -> None:
    import time

    async with make_emu(market_state="REGULAR", latency_ms=30, latency_jitter_ms=10) as h:
        await h.login()
        t0 = time.perf_counter()
        assert (await h.quote("AAPL")).status == 200
        assert time.perf_counter() - t0 >= 0.03


async def test_faults_reproducible_with_seed(make_emu: MakeEmu) -> None:
    runs = []
    for _ in range(2):
        async with make_emu(
            market_state="REGULAR", seed=21, fault_5xx=0.3, fault_truncate=0.3
        ) as h:
            await h.login()
            runs.append([(await h.quote(SYMBOLS)).status for _ in range(40)])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1


_POISON_CHECKS = {
    "ancient_time": (b'"regularMarketTime":-4611686018427387904', "regularMarketTime", -(2**62)),
    "huge_time": (b'"regularMarketTime":9223372036854775808', "regularMarketTime", 2**63),
    "huge_volume": (b'"regularMarketVolume":9223372036854775808', "regularMarketVolume", 2**63),
    "nan_price": (b'"regularMarketPrice":NaN', "regularMarketPrice", "nan"),
    "inf_price": (b'"regularMarketPrice":Infinity', "regularMarketPrice", float("inf")),
    "neg_inf_change": (
        b'"regularMarketChangePercent":-Infinity',
        "regularMarketChangePercent",
        float("-inf"),
    ),
    "max_price": (b'"regularMarketPrice":' + orjson.dumps(1e308), "regularMarketPrice", 1e308),
    "long_symbol": (b'"symbol":"MSFT-XXXX', "symbol", "MSFT-".ljust(300, "X")),
}


@pytest.mark.parametrize("kind", POISON_KINDS)
async def test_poison_symbol_serves_the_extreme_value(h: Harness, kind: str) -> None:
    """``poison_symbols`` poisons that symbol's quote; NaN/Infinity are bare tokens."""
    import json
    import math

    h.emu.configure(poison_symbols=[f"MSFT={kind}"])
    r = await h.quote(SYMBOLS)
    assert r.status == 200
    raw, field, value = _POISON_CHECKS[kind]
    assert raw in r.body, r.body[:400]
    if kind in ("nan_price", "inf_price", "neg_inf_change"):
        with pytest.raises(orjson.JSONDecodeError):  # not JSON: strict parsers refuse it
            orjson.loads(r.body)
    result = json.loads(r.body)["quoteResponse"]["result"]  # Python's json accepts the tokens
    (bad,) = [q for q in result if q["symbol"].startswith("MSFT")]
    got = bad[field]
    assert math.isnan(got) if value == "nan" else got == value
    others = [q for q in result if q is not bad]
    assert len(others) == len(SYMBOLS) - 1
    assert all(isinstance(q["regularMarketPrice"], float | int) for q in others)
    assert all(math.isfinite(q["regularMarketPrice"]) for q in others)
    assert h.stats()["faults"]["poison_quote"] == 1


async def test_fault_poison_quote_poisons_a_share_of_quotes(h: Harness) -> None:
    h.emu.configure(fault_poison_quote=1.0, poison_kinds=["nan_price"])
    r = await h.quote(SYMBOLS)
    assert r.body.count(b'"regularMarketPrice":NaN') == len(SYMBOLS)
    h.emu.configure(fault_poison_quote=0.0)
    r = await h.quote(SYMBOLS)
    assert b"NaN" not in r.body and len(orjson.loads(r.body)["quoteResponse"]["result"]) == 5


async def test_poison_symbols_must_name_a_kind(h: Harness) -> None:
    r = await h.post("/_emulator/config", {"poison_symbols": ["MSFT=bogus"]})
    assert r.status == 400 and "poison_symbols" in r.json()["error"]


def test_poison_knobs_on_the_command_line() -> None:
    from yahoo_emulator.cli import build_parser, config_from_args

    ns = build_parser().parse_args(
        ["--poison-symbols", "MSFT=nan_price,AAPL=huge_volume", "--fault-poison-quote", "0.01",
         "--poison-kinds", "inf_price,long_symbol"]
    )  # fmt: skip
    cfg = config_from_args(ns)
    assert cfg.poison_symbols == ("MSFT=nan_price", "AAPL=huge_volume")
    assert cfg.fault_poison_quote == 0.01 and cfg.poison_kinds == ("inf_price", "long_symbol")


@pytest.mark.parametrize(("kind", "price"), [("huge_price", 987654321.5), ("zero_price", 0)])
async def test_poison_symbol_may_name_an_invalid_kind(h: Harness, kind: str, price: float) -> None:
    """``poison_symbols`` also takes the invalid kinds: a fixed symbol always gets the value
    (e.g. ~1e9 for a ~$50 stock), where ``fault_invalid_quote`` picks a random row."""
    h.emu.configure(poison_symbols=[f"MSFT={kind}"])
    result = await h.quotes(SYMBOLS)
    by = {q["symbol"]: q for q in result}
    assert by["MSFT"]["regularMarketPrice"] == price
    assert all(
        q["regularMarketPrice"] not in (0, 987654321.5) for s, q in by.items() if s != "MSFT"
    )
