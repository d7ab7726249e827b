"""The ``yahoo-emulator`` process: announces its URL, takes every knob, stops on signals."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from yahoo_emulator.cli import build_parser, config_from_args
from yahoo_emulator.config import ConfigPatchError

ROOT = Path(__file__).resolve().parents[2]


def test_flags_map_to_knobs() -> None:
    ns = build_parser().parse_args(
        [
            "--market-state", "REGULAR", "--freeze", "--fault-5xx", "0.25",
            "--invalid-kinds", "zero_price,string_time", "--delisted", "AAA,BBB",
            "--retry-after-s", "7", "--rate-limit-body", "Too Many Requests\\r\\n",
            "--no-require-auth", "--max-symbols", "50",
        ]
    )  # fmt: skip
    cfg = config_from_args(ns)
    assert cfg.market_state == "REGULAR" and cfg.freeze and not cfg.require_auth
    assert cfg.fault_5xx == 0.25 and cfg.max_symbols == 50 and cfg.retry_after_s == 7
    assert cfg.invalid_kinds == ("zero_price", "string_time") and cfg.delisted == ("AAA", "BBB")
    assert cfg.rate_limit_body == "Too Many Requests\r\n"
    with pytest.raises(ConfigPatchError):
        config_from_args(build_parser().parse_args(["--fault-5xx", "3"]))


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    p = subprocess.Popen(
        [sys.executable, "-m", "yahoo_emulator", "--port", "0", "--market-state", "REGULAR",
         "--access-log", str(tmp_path / "a.jsonl"), "--log-level", "WARNING"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout is not None
    line = p.stdout.readline()
    m = re.fullmatch(r"yahoo-emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
    try:
        assert m, line
        yield p, m.group(1)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        for stream in (p.stdout, p.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_process_serves_and_stops_cleanly(
    proc: tuple[subprocess.Popen[str], str], sig: signal.Signals
) -> None:
    p, url = proc
    with urllib.request.urlopen(url + "/_emulator/stats", timeout=5) as r:
        stats = orjson.loads(r.read())
    assert stats["config"]["market_state"] == "REGULAR"
    with urllib.request.urlopen(
        url + "/v8/finance/chart/AAPL?range=1d&interval=1d", timeout=5
    ) as r:
        assert r.status == 200
    p.send_signal(sig)
    assert p.wait(10) == 0
    assert p.stdout is not None and p.stdout.read() == ""  # exactly one stdout line
