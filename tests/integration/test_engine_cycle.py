"""The engine end to end: emulator -> workers -> shared-memory rings -> publisher -> JetStream."""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from pathlib import Path

import orjson
import pytest

from testkit import EmulatorProcess, EngineProcess, stream_messages, wait_for
from tests.conftest import NATS_URL, run_cli

pytestmark = [pytest.mark.integration]

SUMMARY = re.compile(r"(\w+)=([\d.]+)")


def summary(stdout: str) -> dict[str, float]:
    line = stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in SUMMARY.findall(line)}


def quotes_by_symbol(stream: str) -> Counter[str]:
    return Counter(p["symbol"] for p, _ in stream_messages(NATS_URL, stream))


class TestOneCycle:
    @pytest.mark.timeout(180)
    def test_full_universe_once_exactly_once(self, engine_env: dict[str, str]) -> None:
        """run --once puts every valid quote of the 5,000 symbols in the stream exactly once."""
        r = run_cli(["run", "--once"], engine_env)
        assert r.returncode == 0, r.stderr[-3000:]
        s = summary(r.stdout)
        assert s["requested"] == 5000
        assert s["failed"] == 0
        msgs = stream_messages(NATS_URL, engine_env["INGEST_NATS__STREAM"])
        symbols = Counter(p["symbol"] for p, _ in msgs)
        assert len(msgs) == s["published"] == s["valid"]
        assert max(symbols.values()) == 1
        assert s["valid"] + s["rejected"] + s["missing"] == 5000
        payload, headers = msgs[0]
        assert (
            headers["Nats-Msg-Id"]
            == f"{payload['symbol']}:{payload['market_time']}:{payload['volume']}"
        )
        keys = {"price", "volume", "change_percent", "timestamp", "correlation_id", "currency",
                "exchange", "market_state", "source", "ingest_time", "schema_version"}  # fmt: skip
        assert keys <= set(payload)
        assert payload["timestamp"].endswith("Z")
        assert len({p["correlation_id"] for p, _ in msgs}) == len(msgs)

    @pytest.mark.timeout(60)
    def test_a_browser_curl_cffi_cannot_impersonate_stops_the_engine(
        self, engine_env: dict[str, str]
    ) -> None:
        """The workers' transport refuses it at start: the engine exits 2 naming the key,
        instead of restarting workers that fail at every request."""
        r = run_cli(["run", "--once"], {**engine_env, "INGEST_YAHOO__IMPERSONATE": "netscape4"})
        assert r.returncode == 2, r.stderr[-3000:]
        assert "yahoo.impersonate 'netscape4'" in r.stderr

    @pytest.mark.timeout(180)
    def test_second_run_with_unchanged_prices_adds_no_duplicates(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """A second engine run over frozen prices is deduplicated by JetStream (Nats-Msg-Id)."""
        with EmulatorProcess(["--market-state", "REGULAR", "--freeze", "--latency-ms", "2"]) as emu:
            env = _env(emu.url, nats_names, tmp_path)
            first = run_cli(["run", "--once"], env)
            assert first.returncode == 0, first.stderr[-3000:]
            n1 = sum(quotes_by_symbol(nats_names["INGEST_NATS__STREAM"]).values())
            second = run_cli(["run", "--once"], env)
            assert second.returncode == 0, second.stderr[-3000:]
            s2 = summary(second.stdout)
            n2 = sum(quotes_by_symbol(nats_names["INGEST_NATS__STREAM"]).values())
        assert n1 == n2 > 4000
        assert s2["published"] == 0
        assert s2["deduplicated"] == s2["valid"]

    @pytest.mark.timeout(180)
    def test_rejected_quotes_land_in_dlq_with_reason(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Quotes the emulator corrupts are rejected, counted by reason and dead-lettered."""
        args = ["--market-state", "REGULAR", "--latency-ms", "2", "--seed", "3",
                "--fault-invalid-quote", "0.5", "--fault-stale-quote", "0.3"]  # fmt: skip
        with EmulatorProcess(args) as emu:
            # one quote_rejected line per rejection is a DEBUG event (the summary and the DLQ
            # carry them at INFO)
            env = _env(emu.url, nats_names, tmp_path, INGEST_LOG__LEVEL="DEBUG")
            r = run_cli(["run", "--once"], env)
        assert r.returncode == 0, r.stderr[-3000:]
        s = summary(r.stdout)
        assert s["rejected"] > 0
        dlq = stream_messages(NATS_URL, nats_names["INGEST_NATS__DLQ_STREAM"])
        assert len(dlq) == s["rejected"]
        reasons = Counter(p["reason"] for p, _ in dlq)
        assert "stale" in reasons
        assert all(p["kind"] == "rejected" and p["detail"] for p, _ in dlq)
        line = r.stdout.strip().splitlines()[-1]
        for reason, n in reasons.items():
            assert f"{reason}={n}" in line
        rejected_logs = [
            e for e in map(_json, r.stderr.splitlines()) if e.get("event") == "quote_rejected"
        ]
        assert len(rejected_logs) == s["rejected"]


def _json(line: str) -> dict[str, object]:
    try:
        v = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {}
    return v if isinstance(v, dict) else {}


def _env(url: str, names: dict[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(names)
    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    env.update(
        {
            "INGEST_CONFIG": str(cfg),
            "INGEST_NATS__URL": NATS_URL,
            "INGEST_YAHOO__BASE_URL": url,
            "INGEST_YAHOO__MAX_IN_FLIGHT": "16",
            "INGEST_YAHOO__CRUMB_MIN_INTERVAL_S": "0",
            "INGEST_YAHOO__BACKOFF_BASE_S": "0.05",
            "INGEST_WORKERS__COUNT": "2",
            "INGEST_SYMBOLS__FILE": str(Path(__file__).resolve().parents[2] / "symbols.json"),
            "INGEST_POSTGRES__ENABLED": "false",
            "INGEST_REDIS__ENABLED": "false",
            "INGEST_HTTP__ENABLED": "false",
            "INGEST_EARNINGS__ENABLED": "false",
            "INGEST_LOG__FORMAT": "json",
            "INGEST_NATS__OUTBOX_DIR": str(tmp_path / "outbox"),
            "INGEST_POSTGRES__SPILL_DIR": str(tmp_path / "spill"),
            **extra,
        }
    )
    return env


class TestContinuousRun:
    @pytest.mark.timeout(120)
    def test_unchanged_quotes_not_republished_across_cycles(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Within one run, the second cycle over frozen prices publishes nothing new."""
        with EmulatorProcess(["--market-state", "REGULAR", "--freeze", "--latency-ms", "2"]) as emu:
            env = _env(emu.url, nats_names, tmp_path, INGEST_SCHEDULER__INTERVAL_S="1")
            with EngineProcess(["run"], env) as eng:
                first = eng.wait_event("cycle_completed", count=1)
                second = eng.wait_event("cycle_completed", count=2)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait() == 0
        assert first["published"] == first["valid"] > 4000
        assert second["published"] == 0 and second["unchanged"] == second["valid"]
        assert sum(quotes_by_symbol(nats_names["INGEST_NATS__STREAM"]).values()) == first["valid"]

    @pytest.mark.timeout(120)
    def test_sighup_reloads_symbols_and_rejects_bad_file(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """SIGHUP swaps the universe between cycles; a bad file is refused and the old one kept."""
        sym = tmp_path / "symbols.json"
        sym.write_text(orjson.dumps(["AAPL", "MSFT", "NVDA"]).decode())
        with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "2"]) as emu:
            # strict mode: one bad line refuses the file (the default skips it)
            env = _env(emu.url, nats_names, tmp_path, INGEST_SYMBOLS__FILE=str(sym),
                       INGEST_SCHEDULER__INTERVAL_S="0.5",
                       INGEST_SYMBOLS__ON_INVALID="reject")  # fmt: skip
            with EngineProcess(["run"], env) as eng:
                eng.wait_event("cycle_completed", requested=3)
                sym.write_text(orjson.dumps(["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL"]).decode())
                eng.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
                eng.wait_event("symbols_reloaded", after=5)
                eng.wait_event("cycle_completed", requested=5)
                sym.write_text('["AAPL", "bad symbol"]')
                eng.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
                rejected = eng.wait_event("symbols_reload_rejected")
                n = len(eng.named("cycle_completed"))
                eng.wait_event("cycle_completed", count=n + 1, requested=5)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait() == 0
        assert rejected["kept"] == 5
        assert "line 1" in str(rejected["error"])
        seen = quotes_by_symbol(nats_names["INGEST_NATS__STREAM"])
        assert {"AMZN", "GOOGL"} <= set(seen)

    @pytest.mark.timeout(120)
    def test_sigterm_mid_cycle_loses_nothing_fetched(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """SIGTERM during a slow cycle: the cycle finishes, everything fetched is published."""
        with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "150"]) as emu:
            env = _env(emu.url, nats_names, tmp_path, INGEST_YAHOO__MAX_IN_FLIGHT="4")
            with EngineProcess(["run"], env) as eng:
                eng.wait_event("cycle_started")
                # SIGTERM once the cycle (~100 requests of 150 ms, 4 at a time) is under way
                wait_for(lambda: emu.stats()["requests"].get("quote", {}).get("200", 0) >= 12)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait() == 0
                done = eng.named("cycle_completed")
                assert eng.named("shutdown_complete") and not eng.named("shutdown_left_unpublished")
        assert len(done) == 1 and done[0]["requested"] == 5000
        stored = sum(quotes_by_symbol(nats_names["INGEST_NATS__STREAM"]).values())
        assert stored == done[0]["published"] == done[0]["valid"] > 4000


class TestChildRestart:
    @pytest.mark.timeout(120)
    def test_killed_worker_and_publisher_are_restarted(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """SIGKILLed children come back; later cycles complete and nothing is duplicated."""
        with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "2"]) as emu:
            env = _env(emu.url, nats_names, tmp_path, INGEST_SCHEDULER__INTERVAL_S="1",
                       INGEST_WORKERS__RESTART_BACKOFF_S="0.1")  # fmt: skip
            with EngineProcess(["run"], env) as eng:
                eng.wait_event("cycle_completed")
                worker = eng.wait_event("child_started", child="worker-0")
                os.kill(worker["pid"], signal.SIGKILL)
                eng.wait_event("child_died", child="worker-0")
                eng.wait_event("child_started", child="worker-0", count=2)
                n = len(eng.named("cycle_completed"))
                eng.wait_event("cycle_completed", count=n + 1, failed=0)
                publisher = eng.wait_event("child_started", child="publisher")
                os.kill(publisher["pid"], signal.SIGKILL)
                eng.wait_event("child_died", child="publisher")
                eng.wait_event("child_started", child="publisher", count=2)
                n = len(eng.named("cycle_completed"))
                eng.wait_event("cycle_completed", count=n + 1)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait() == 0
        msgs = stream_messages(NATS_URL, nats_names["INGEST_NATS__STREAM"])
        ids = Counter(h["Nats-Msg-Id"] for _, h in msgs)
        assert ids and max(ids.values()) == 1
