"""Resilience end to end (marker ``fault``): outages, restarts, kills, 429 storms, bad bodies."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from testkit import EmulatorProcess, EngineProcess, OwnNats, stream_messages, wait_for
from tests.integration.test_engine_cycle import _env
from tests.integration.test_engine_storage import REDIS_URL, _rows, _storage_env, table
from tests.integration.test_lifecycle_faults import _symbols

pytestmark = [pytest.mark.integration, pytest.mark.fault]
__all__ = ["table"]  # the fixture, imported for these tests


def _ids(url: str, stream: str) -> Counter[str]:
    return Counter(h["Nats-Msg-Id"] for _, h in stream_messages(url, stream))


class TestNatsOutages:
    @pytest.mark.timeout(180)
    def test_nats_down_30s_outbox_holds_then_drains_in_order(
        self, nats_names: dict[str, str], tmp_path: Path, table: str
    ) -> None:
        """NATS gone for 30 s: cycles go on into the outbox, which drains in order, exactly once.

        1,000 symbols: the outbox must drain faster than new cycles fill it, and on a loaded
        2-core machine (the suite runs in parallel) the replay of the full 5,000 every 2 s
        only keeps pace with them (outbox_drained never came within 60 s)."""
        nats = OwnNats(tmp_path / "js")
        nats.start()
        try:
            with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "2"]) as emu:
                env = _storage_env(emu, nats_names, tmp_path, table, REDIS_URL, f"{table}:")
                symbols = _symbols(tmp_path / "symbols.json", 1000)
                env.update(INGEST_NATS__URL=nats.url, INGEST_SCHEDULER__INTERVAL_S="2",
                           INGEST_NATS__ACK_TIMEOUT_S="1",
                           INGEST_NATS__OUTBOX_AFTER_S="1",
                           INGEST_SYMBOLS__FILE=str(symbols))  # fmt: skip
                with EngineProcess(["run"], env) as eng:
                    eng.wait_event("cycle_completed", timeout=60)
                    nats.kill()
                    n = len(eng.named("cycle_completed"))
                    eng.wait_event("outbox_started", timeout=30)
                    eng.wait_event("cycle_completed", count=n + 3, timeout=60)
                    during = [e for e in eng.named("cycle_completed")[n:]]
                    assert sum(e["outboxed"] for e in during) > 0
                    outbox = list((tmp_path / "outbox").glob("*.msgpack"))
                    assert outbox
                    wait_for(lambda: len(eng.named("cycle_completed")) >= n + 10, timeout=40)
                    nats.start()
                    eng.wait_event("outbox_drained", timeout=60)
                    eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                    assert eng.wait() == 0
                stream = stream_messages(nats.url, nats_names["INGEST_NATS__STREAM"])
        finally:
            nats.kill()
        ids = Counter(h["Nats-Msg-Id"] for _, h in stream)
        assert max(ids.values()) == 1
        # per symbol, market times arrive in order
        last: dict[str, int] = {}
        for p, _ in stream:
            assert p["market_time"] >= last.get(p["symbol"], 0), p["symbol"]
            last[p["symbol"]] = p["market_time"]
        # PostgreSQL stored every valid quote fetched (independently of NATS): the stream must
        # hold exactly those
        assert {(p["symbol"], p["market_time"]) for p, _ in stream} == asyncio.run(_rows(table))
        assert eng.named("outbox_drained")[-1]["replayed_new_quotes"] > 0
        assert not list((tmp_path / "outbox").glob("*.msgpack"))

    @pytest.mark.timeout(150)
    def test_nats_restarted_mid_cycle_every_quote_once(
        self, nats_names: dict[str, str], tmp_path: Path, table: str
    ) -> None:
        """NATS killed and restarted during a slow cycle: every valid quote is stored once."""
        nats = OwnNats(tmp_path / "js")
        nats.start()
        try:
            with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "100"]) as emu:
                env = _storage_env(emu, nats_names, tmp_path, table, REDIS_URL, f"{table}:")
                env.update(INGEST_NATS__URL=nats.url, INGEST_YAHOO__MAX_IN_FLIGHT="4",
                           INGEST_NATS__ACK_TIMEOUT_S="1",
                           INGEST_NATS__OUTBOX_AFTER_S="1")  # fmt: skip
                with EngineProcess(["run", "--once", "--timeout", "100"], env) as eng:
                    eng.wait_event("cycle_started", timeout=60)
                    wait_for(lambda: emu.stats()["requests"].get("quote", {}).get("200", 0) >= 30)
                    nats.kill()
                    wait_for(lambda: emu.stats()["requests"].get("quote", {}).get("200", 0) >= 60)
                    nats.start()
                    code = eng.wait(120)
                    eng.wait_event("outbox_drained", timeout=30) if eng.named(
                        "outbox_started"
                    ) else None
                done = eng.named("cycle_completed")
            stream = _ids(nats.url, nats_names["INGEST_NATS__STREAM"])
        finally:
            nats.kill()
        assert len(done) == 1 and code in (0, 1)
        assert max(stream.values()) == 1
        rows = asyncio.run(_rows(table))
        assert len(rows) == done[0]["valid"]
        # Nats-Msg-Id = {symbol}:{market time}:{volume}; the table's key is (symbol, market time)
        ids = [i.split(":") for i in stream]
        assert all(len(parts) == 3 for parts in ids)
        assert {(s, int(t)) for s, t, _ in ids} == rows and len(ids) == len(rows)


class TestProcessKills:
    @pytest.mark.timeout(150)
    def test_sigkill_worker_and_publisher_mid_cycle(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Children SIGKILLed mid-cycle: restarted, and the stream holds no duplicate and no gap
        for the cycles that completed."""
        with EmulatorProcess(
            ["--market-state", "REGULAR", "--latency-ms", "60", "--freeze"]
        ) as emu:
            # a fetch phase (~0.75 s) outlasts the interval: cycles run back to back, so the
            # worker is killed during a fetch phase
            env = _env(emu.url, nats_names, tmp_path, INGEST_YAHOO__MAX_IN_FLIGHT="8",
                       INGEST_SCHEDULER__INTERVAL_S="0.5",
                       INGEST_WORKERS__RESTART_BACKOFF_S="0.1")  # fmt: skip
            with EngineProcess(["run"], env) as eng:
                eng.wait_event("cycle_completed", timeout=60)
                base = emu.stats()["requests"].get("quote", {}).get("200", 0)
                wait_for(
                    lambda: emu.stats()["requests"].get("quote", {}).get("200", 0) >= base + 20
                )
                os.kill(eng.wait_event("child_started", child="publisher")["pid"], signal.SIGKILL)
                wait_for(
                    lambda: emu.stats()["requests"].get("quote", {}).get("200", 0) >= base + 40
                )
                os.kill(eng.wait_event("child_started", child="worker-1")["pid"], signal.SIGKILL)
                eng.wait_event("child_started", child="publisher", count=2)
                eng.wait_event("child_started", child="worker-1", count=2)
                n = len(eng.named("cycle_completed"))
                eng.wait_event("cycle_completed", count=n + 2, timeout=60)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait() == 0
        ids = _ids(os.environ.get("IA_TEST_NATS_URL", "nats://127.0.0.1:4222"),
                   nats_names["INGEST_NATS__STREAM"])  # fmt: skip
        assert max(ids.values()) == 1
        # prices are frozen: every valid quote of the universe is in the stream exactly once
        first = eng.named("cycle_completed")[0]
        assert len(ids) == first["valid"]
        # the worker killed mid-fetch fetched its share again once restarted: no cycle lost it
        assert eng.named("worker_share_refetch")
        done = eng.named("cycle_completed")
        assert all(c["failed"] == 0 and c["requested"] == first["requested"] for c in done), [
            (c["cycle"], c["requested"], c["failed"], c["errors"]) for c in done
        ]


class TestYahooTrouble:
    @pytest.mark.timeout(120)
    def test_429_storm_rate_adapts_and_recovers(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """During a 429 storm the rate halves repeatedly; afterwards cycles complete again."""
        with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "2"]) as emu:
            env = _env(emu.url, nats_names, tmp_path, INGEST_SCHEDULER__INTERVAL_S="1",
                       INGEST_YAHOO__RATE_INITIAL_RPS="40", INGEST_YAHOO__RATE_MAX_RPS="200",
                       INGEST_YAHOO__RATE_INCREASE_RPS="20")  # fmt: skip
            with EngineProcess(["run"], env) as eng:
                first = eng.wait_event("cycle_completed", timeout=60)
                emu.configure(fault_429=1.0)
                # one cut per round of 429s (requests in flight together count once)
                wait_for(
                    lambda: any(
                        e["rate_rps"] < first["rate_rps"] / 4 for e in eng.named("rate_limited")
                    ),
                    timeout=30,
                )
                low = min(e["rate_rps"] for e in eng.named("rate_limited"))
                emu.configure(fault_429=0.0)
                n = len(eng.named("cycle_completed"))
                eng.wait_event("cycle_completed", count=n + 2, failed=0, timeout=90)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait() == 0
        assert low < first["rate_rps"] / 4
        assert all(e["rate_rps"] >= 0.2 for e in eng.named("rate_limited"))

    @pytest.mark.timeout(120)
    def test_breaker_opens_and_closes(self, nats_names: dict[str, str], tmp_path: Path) -> None:
        """Yahoo answering 5xx to everything opens the breaker; once healthy it closes."""
        with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "2"]) as emu:
            env = _env(emu.url, nats_names, tmp_path, INGEST_SCHEDULER__INTERVAL_S="1",
                       INGEST_YAHOO__BREAKER_COOLDOWN_S="1")  # fmt: skip
            with EngineProcess(["run"], env) as eng:
                eng.wait_event("cycle_completed", timeout=60)
                emu.configure(fault_5xx=1.0)
                eng.wait_event("breaker_opened", timeout=30)
                failing = eng.wait_event(
                    "cycle_completed", count=len(eng.named("cycle_completed")) + 1
                )
                emu.configure(fault_5xx=0.0)
                eng.wait_event("breaker_closed", timeout=30)
                n = len(eng.named("cycle_completed"))
                ok = eng.wait_event("cycle_completed", count=n + 1, failed=0, timeout=30)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait() == 0
        assert failing["failed"] > 0 and "CircuitOpenError" in failing["errors"]
        assert ok["breaker"] == "CLOSED"

    @pytest.mark.timeout(120)
    def test_every_malformed_body_kind_is_counted_without_crash(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Truncated, HTML, resets, 5xx, invalid quotes: retried or rejected, never a crash."""
        args = ["--market-state", "REGULAR", "--latency-ms", "2", "--fault-truncate", "0.05",
                "--fault-html", "0.05", "--fault-reset", "0.05", "--fault-5xx", "0.05",
                "--fault-invalid-quote", "0.3"]  # fmt: skip
        with EmulatorProcess(args) as emu:
            env = _env(emu.url, nats_names, tmp_path, INGEST_SCHEDULER__INTERVAL_S="1")
            with EngineProcess(["run"], env) as eng:
                eng.wait_event("cycle_completed", count=3, timeout=90)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait() == 0
            faults = emu.stats()["faults"]
        assert not eng.named("child_died")
        cycles = eng.named("cycle_completed")
        assert sum(sum(c["rejected"].values()) for c in cycles) > 0
        assert {"truncated_json", "connection_reset", "http_5xx"} <= set(faults), faults
        assert any("html" in k for k in faults), faults
        for c in cycles:
            assert c["failed"] <= 0.01 * c["requested"], c
