"""Lifecycle faults end to end (marker ``fault``): shutdown within one deadline, no respawn and
no orphan during shutdown, a clean publisher exit while NATS is down, a too-small /dev/shm, no
shared-memory leak across SIGHUP reloads, a bounded fetch phase against a stalling Yahoo."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from engine.ringbuf import segment_size
from testkit import ROOT, EmulatorProcess, EngineProcess, OwnNats
from tests.integration.test_engine_cycle import _env

pytestmark = [pytest.mark.integration, pytest.mark.fault]

EMULATOR = ("--market-state", "REGULAR", "--latency-ms", "2")
GRACE_S = 4.0


def _symbols(path: Path, n: int) -> Path:
    """The first ``n`` symbols of the committed universe."""
    doc = json.loads((ROOT / "symbols.json").read_text())[:n]
    path.write_text(json.dumps(doc))
    return path


def _small_env(
    emu: EmulatorProcess, names: dict[str, str], tmp_path: Path, n: int = 200, **extra: str
) -> dict[str, str]:
    return _env(
        emu.url,
        names,
        tmp_path,
        INGEST_SYMBOLS__FILE=str(_symbols(tmp_path / "symbols.json", n)),
        INGEST_SCHEDULER__INTERVAL_S="1",
        INGEST_SCHEDULER__SHUTDOWN_GRACE_S=str(GRACE_S),
        INGEST_YAHOO__TIMEOUT_S="60",
        INGEST_YAHOO__MAX_ATTEMPTS="1",
        INGEST_NATS__ACK_TIMEOUT_S="1",
        INGEST_NATS__OUTBOX_AFTER_S="0.5",
        **extra,
    )


def _stall_next_cycle(emu: EmulatorProcess, eng: EngineProcess) -> None:
    """Make every quote request hang, and wait until a cycle runs into it."""
    emu.configure(fault_stall=1.0, stall_s=60.0)
    n = len(eng.named("cycle_started"))
    eng.wait_event("cycle_started", count=n + 1, timeout=30)
    time.sleep(0.3)  # its requests are in flight


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state


def _child_pids(eng: EngineProcess) -> list[int]:
    return [int(e["pid"]) for e in eng.named("child_started")]


def _after(events: list[dict[str, Any]], name: str, eng: EngineProcess) -> list[dict[str, Any]]:
    """The events called ``name`` logged after ``shutdown_requested``."""
    seen = False
    out = []
    for e in list(eng.events):
        if e.get("event") == "shutdown_requested":
            seen = True
        elif seen and e.get("event") == name:
            out.append(e)
    return out


class TestShutdown:
    @pytest.mark.timeout(90)
    def test_sigterm_with_cycle_in_flight_and_nats_down_exits_0_within_deadline(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Workers and publisher share ONE deadline: a stalled cycle plus an outbox that cannot
        drain (NATS down) still end within ``scheduler.shutdown_grace_s``."""
        nats = OwnNats(tmp_path / "js")
        nats.start()
        try:
            with EmulatorProcess(EMULATOR) as emu:
                env = _small_env(emu, nats_names, tmp_path, INGEST_NATS__URL=nats.url)
                with EngineProcess(["run"], env) as eng:
                    eng.wait_event("cycle_completed", timeout=60)
                    nats.kill()
                    eng.wait_event("outbox_started", timeout=30)
                    _stall_next_cycle(emu, eng)
                    t0 = time.monotonic()
                    eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                    rc = eng.wait(timeout=60)
                    elapsed = time.monotonic() - t0
        finally:
            nats.kill()
        assert rc == 0
        assert elapsed < GRACE_S + 1.5, f"shutdown took {elapsed:.1f}s, deadline {GRACE_S}s"

    @pytest.mark.timeout(90)
    def test_publisher_killed_during_shutdown_is_not_respawned_no_orphan(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        with EmulatorProcess(EMULATOR) as emu:
            env = _small_env(emu, nats_names, tmp_path)
            with EngineProcess(["run"], env) as eng:
                eng.wait_event("cycle_completed", timeout=60)
                _stall_next_cycle(emu, eng)  # the workers' phase of the shutdown takes a while
                publisher = eng.wait_event("child_started", child="publisher")["pid"]
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                eng.wait_event("shutdown_requested", timeout=10)
                os.kill(publisher, signal.SIGKILL)
                eng.wait(timeout=60)
                pids = _child_pids(eng)
        assert not _after(eng.events, "child_started", eng), "a child was respawned at shutdown"
        assert [p for p in pids if _pid_alive(p)] == [], "a child outlived the engine"

    @pytest.mark.timeout(90)
    def test_sigterm_while_nats_down_publisher_exits_cleanly_records_outboxed(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        nats = OwnNats(tmp_path / "js")
        nats.start()
        try:
            with EmulatorProcess(EMULATOR) as emu:
                env = _small_env(emu, nats_names, tmp_path, INGEST_NATS__URL=nats.url)
                with EngineProcess(["run"], env) as eng:
                    eng.wait_event("cycle_completed", timeout=60)
                    nats.kill()
                    eng.wait_event("outbox_started", timeout=30)
                    eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                    rc = eng.wait(timeout=60)
        finally:
            nats.kill()
        assert rc == 0
        exits = [e for e in eng.named("child_exited") if e["child"] == "publisher"]
        assert exits and exits[-1]["exit_code"] == 0, "\n".join(
            str(e)
            for e in [
                e for e in eng.events if "child" in e or e.get("level") in ("error", "warning")
            ]
        )
        assert not eng.named("child_died"), eng.named("child_died")
        assert list((tmp_path / "outbox").glob("*.msgpack")), "nothing outboxed"


class TestResources:
    @pytest.mark.timeout(60)
    def test_dev_shm_too_small_is_a_clear_error_not_sigbus(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Rings bigger than the free space of the real /dev/shm: refused at start."""
        st = os.statvfs("/dev/shm")
        free = st.f_bavail * st.f_frsize
        capacity = 1 << 24
        workers = math.ceil(free / segment_size(capacity)) + 1
        if workers > 256:
            pytest.skip("/dev/shm is larger than 256 of the largest rings")
        with EmulatorProcess(EMULATOR) as emu:
            env = _small_env(emu, nats_names, tmp_path, INGEST_WORKERS__COUNT=str(workers),
                             INGEST_WORKERS__RING_CAPACITY=str(capacity))  # fmt: skip
            with EngineProcess(["run"], env) as eng:
                rc = eng.wait(timeout=20)
        text = "\n".join(str(e.get("text", "")) for e in eng.events)
        assert rc == 2, text
        assert "/dev/shm" in text and "shm_size" in text and "ring_capacity" in text, text

    @pytest.mark.timeout(90)
    def test_sighup_reloads_do_not_leak_shared_memory(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        with EmulatorProcess(EMULATOR) as emu:
            env = _small_env(emu, nats_names, tmp_path, n=30)
            with EngineProcess(["run"], env) as eng:
                eng.wait_event("cycle_completed", timeout=60)
                pid = eng.proc.pid  # type: ignore[union-attr]
                before = _shm_segments(pid)
                for i in range(1, 5):
                    _symbols(tmp_path / "symbols.json", 30 + i)  # a changed universe each time
                    eng.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
                    eng.wait_event("symbols_reloaded", count=i, timeout=30)
                n = len(eng.named("cycle_completed"))
                eng.wait_event("cycle_completed", count=n + 1, timeout=30)
                after = _shm_segments(pid)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait(timeout=60) == 0
        assert len(after) <= len(before), (before, after)

    @pytest.mark.timeout(90)
    def test_fetch_phase_against_stalling_yahoo_ends_within_bound(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """A 2 s bound; the symbols it did not reach count as failed."""
        with EmulatorProcess(EMULATOR) as emu:
            env = _small_env(emu, nats_names, tmp_path, INGEST_SCHEDULER__FETCH_TIMEOUT_S="2")
            with EngineProcess(["run"], env) as eng:
                first = eng.wait_event("cycle_completed", timeout=60)
                emu.configure(fault_stall=1.0, stall_s=60.0)
                n = len(eng.named("cycle_started"))
                started = eng.wait_event("cycle_started", count=n + 1, timeout=30)
                done = eng.wait_event("cycle_completed", cycle=started["cycle"], timeout=15)
                eng.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                assert eng.wait(timeout=60) == 0
        assert first["failed"] == 0
        assert done["fetch_seconds"] < 2.0 + 1.0, done
        assert done["failed"] == done["requested"] == 200, done
        assert "FetchTimeout" in done["errors"], done


def _shm_segments(pid: int) -> set[str]:
    """The /dev/shm segments the process ``pid`` maps that still have a name in /dev/shm."""
    names = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/dev/shm/") and os.path.exists(parts[5]):
            names.add(parts[5])
    return names
