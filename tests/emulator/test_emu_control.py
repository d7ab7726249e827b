"""Control endpoints: stats, runtime config patches, reset, access log; the thread runner."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from curl_cffi import requests as curl

from tests.emulator.conftest import SYMBOLS, Harness, MakeEmu
from yahoo_emulator import EmulatorConfig, EmulatorThread
from yahoo_emulator.config import ConfigPatchError, patch_config


async def test_stats_count_requests_by_endpoint_and_status(h: Harness) -> None:
    await h.quotes([*SYMBOLS, "NOPE"])
    await h.quote(SYMBOLS, crumb="bad")
    await h.chart("AAPL", range="1d", interval="1d")
    await h.get("/no/such/path")
    r = await h.get("/_emulator/stats")
    assert r.status == 200
    s = r.json()
    assert s["requests"]["cookie"] == {"404": 1}
    assert s["requests"]["getcrumb"] == {"200": 1}
    assert s["requests"]["quote"] == {"200": 1, "401": 1}
    assert s["requests"]["chart"] == {"200": 1}
    assert s["requests"]["other"] == {"404": 1}
    assert s["requests_total"] == 6  # control requests are not counted
    assert s["symbols"] == {"requested": 6, "served": 5, "unknown": 1, "delisted": 0}
    assert s["market_state"] == "REGULAR" and s["instruments"] >= 7000
    assert s["config"]["seed"] == 11 and s["cpu_s"] > 0 and s["uptime_s"] >= 0


async def test_config_patch_over_http(h: Harness) -> None:
    r = await h.post("/_emulator/config", {"fault_429": 1.0})
    assert r.status == 200 and r.json()["fault_429"] == 1.0
    assert (await h.quote(SYMBOLS)).status == 429
    r = await h.post("/_emulator/config", {"fault_429": 0})
    assert (await h.quote(SYMBOLS)).status == 200
    # bad patches change nothing and name the key
    for bad in ({"fault_429": 2.0}, {"no_such_knob": 1}, {"max_symbols": "many"}):
        r = await h.post("/_emulator/config", bad)
        assert r.status == 400, bad
        assert next(iter(bad)) in r.json()["error"]
    r = await h.post("/_emulator/config", None)
    assert r.status == 400
    assert (await h.get("/_emulator/config")).json()["fault_429"] == 0.0


def test_patch_config_validates_as_a_whole() -> None:
    cfg = EmulatorConfig()
    new = patch_config(cfg, {"invalid_kinds": ["zero_price"], "latency_ms": 5})
    assert new.invalid_kinds == ("zero_price",) and new.latency_ms == 5.0 and cfg.latency_ms == 0
    with pytest.raises(ConfigPatchError, match="invalid_kinds"):
        patch_config(cfg, {"invalid_kinds": ["nonsense"]})
    with pytest.raises(ConfigPatchError):
        patch_config(cfg, {"invalid_kinds": []})
    with pytest.raises(ConfigPatchError):
        patch_config(cfg, ["not", "a", "mapping"])  # type: ignore[arg-type]


async def test_reset_zeroes_counters(h: Harness) -> None:
    await h.quotes(SYMBOLS)
    assert (await h.post("/_emulator/reset")).json() == {"ok": True}
    s = h.stats()
    assert s["requests_total"] == 0 and s["symbols"]["served"] == 0


async def test_health(h: Harness) -> None:
    assert (await h.get("/_emulator/health")).json() == {"ok": True}


async def test_access_log_lines(make_emu: MakeEmu, tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    async with make_emu(market_state="REGULAR", access_log=str(log), latency_ms=2) as h:
        await h.login()
        await h.quotes(SYMBOLS)
        h.emu.configure(fault_5xx=1.0)
        await h.quote(SYMBOLS)
        await h.get("/_emulator/stats")
        lines = [orjson.loads(x) for x in log.read_bytes().splitlines()]
    assert [x["path"] for x in lines] == [
        "/", "/v1/test/getcrumb", "/v7/finance/quote", "/v7/finance/quote",
    ]  # fmt: skip
    first_quote = lines[2]
    assert first_quote["method"] == "GET" and first_quote["status"] == 200
    assert first_quote["endpoint"] == "quote" and first_quote["n_symbols"] == len(SYMBOLS)
    assert first_quote["client"] == "127.0.0.1" and first_quote["fault"] is None
    assert isinstance(first_quote["ts"], float) and first_quote["latency_ms"] == 2.0
    assert first_quote["duration_ms"] >= 2.0
    assert lines[3]["fault"] == "http_5xx" and lines[3]["status"] >= 500
    assert lines[0]["ts"] <= lines[1]["ts"] <= lines[2]["ts"]


def test_thread_runner_for_sync_clients() -> None:
    with EmulatorThread(EmulatorConfig(market_state="REGULAR", seed=2)) as emu:
        s: curl.Session[curl.Response] = curl.Session(impersonate="chrome")
        try:
            s.get(emu.url + "/")
            crumb = s.get(emu.url + "/v1/test/getcrumb").text
            r = s.get(emu.url + "/v7/finance/quote", params={"symbols": "AAPL", "crumb": crumb})
            assert r.status_code == 200
            assert r.json()["quoteResponse"]["result"][0]["symbol"] == "AAPL"
            assert emu.configure(fault_429=1.0).fault_429 == 1.0
            assert (
                s.get(emu.url + "/v7/finance/quote", params={"symbols": "AAPL"}).status_code == 429
            )
            assert emu.stats()["rate_limited"] == 1
            assert emu.expire_crumbs() == 1
        finally:
            s.close()
    emu.stop()  # idempotent
