"""Smoke run of bench/soak.py (one minute, 200 symbols every 2 s), so the soak cannot rot: it
must start its private NATS/PostgreSQL/Redis, carry out every disruption, and write a JSON
report with every figure the issue asks for. The figures are not checked against the targets
here (that is the one-hour soak's job)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(150)
def test_one_minute_soak_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = ["--minutes", "1", "--symbols", "200", "--interval-s", "2", "--sample-s", "1", "--json"]
    res = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), *argv, str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=140, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    r = orjson.loads(out.read_bytes())
    assert r["cycles_completed"] > 5
    assert {"symbol_error_rate", "requested", "failed", "cycles_incomplete"} <= set(r["errors"])
    for key in ("lost", "duplicated", "pg_rows_missing", "served_not_counted"):
        assert isinstance(r[key], int), key
    m = r["messages"]
    assert m["stream_messages"] > 0 and m["pg_rows"] > 0 and "stream_not_in_pg" in m
    for key in ("rss_kb", "fds"):
        assert r["resources"][key]["growth"] is not None, r["resources"]
    assert set(r["stalls"]) == {"fetch", "cycle", "publish", "store"}
    assert all(isinstance(s["max_stall_s"], float) for s in r["stalls"].values())
    kinds = {a["kind"] for a in r["actions"]}
    assert kinds == {"nats_wiped", "nats", "postgres", "redis", "kill_worker",
                     "kill_publisher", "sighup"}  # fmt: skip
    assert all("skipped" not in a for a in r["actions"]), r["actions"]
    assert len(r["down_windows_s"]["nats"]) == 2
    assert set(r["verdict"]) == {"symbol_error_rate", "lost", "duplicated", "pg_rows_missing",
                                 "rss_growth", "max_stall_s"}  # fmt: skip
    assert isinstance(r["passed"], bool)
    assert "PASSED" in res.stdout or "FAILED" in res.stdout
