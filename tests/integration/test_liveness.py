"""/healthz tells a stalled stage: a real engine whose publisher is frozen (SIGSTOP) answers 503
naming the publisher within the stall threshold, and 200 again once it runs (SIGCONT)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from testkit import EmulatorProcess, EngineProcess, free_port
from tests.conftest import NATS_URL
from tests.integration.real_engine import EMULATOR_ARGS, INTERVAL_S, _clean_up, engine_env

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.timeout(120)]

STALL_AFTER_S = 2.0


def healthz(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_health(url: str, want: int, limit_s: float) -> tuple[float, dict[str, Any]]:
    t0 = time.monotonic()
    while True:
        status, doc = healthz(url)
        if status == want:
            return time.monotonic() - t0, doc
        assert time.monotonic() - t0 < limit_s, (status, doc)
        time.sleep(0.1)


def test_frozen_publisher_makes_healthz_fail_and_recover(tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:10]
    port = free_port()
    try:
        with EmulatorProcess(EMULATOR_ARGS) as emu:
            env = engine_env(tmp_path, emu.url, NATS_URL, uid, port)
            env["INGEST_HTTP__STALL_AFTER_S"] = str(STALL_AFTER_S)
            env["INGEST_EARNINGS__ENABLED"] = "false"
            url = f"http://127.0.0.1:{port}"
            with EngineProcess(["run"], env) as eng:
                pid = int(eng.wait_event("child_started", timeout=30, child="publisher")["pid"])
                eng.wait_event("cycle_completed", timeout=60)
                status, doc = healthz(url)
                assert status == 200, doc
                os.kill(pid, signal.SIGSTOP)
                try:
                    # the next cycle's records wait in the ring; no tail moves
                    took, doc = wait_health(url, 503, limit_s=4 * STALL_AFTER_S + 10)
                    assert doc["stalled"] == ["publisher"], doc
                    # records reach the ring within a cycle interval; then the threshold
                    assert took < INTERVAL_S + STALL_AFTER_S + 3, took
                    assert doc["stages"]["publisher"]["since_progress_s"] >= STALL_AFTER_S
                    eng.wait_event("stage_stalled", timeout=5, stage="publisher")
                finally:
                    os.kill(pid, signal.SIGCONT)
                _, doc = wait_health(url, 200, limit_s=15)
                assert doc["status"] == "ok", doc
                assert set(doc["stages"]) == {"scheduler", "fetch", "publisher"}
                eng.wait_event("stage_recovered", timeout=5, stage="publisher")
                assert eng.proc is not None
                eng.proc.send_signal(signal.SIGTERM)
                assert eng.wait(60) == 0
    finally:
        _clean_up(uid, shared_nats=True)
