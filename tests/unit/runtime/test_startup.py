"""The start-up timer: seconds per phase from the process's start (clock injected)."""

from __future__ import annotations

import subprocess
import sys
import time

from engine.runtime.startup import StartupTimer, process_age_s


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_phases_add_up_from_the_process_start() -> None:
    clock = Clock()
    timer = StartupTimer(clock, age_s=0.5)  # the process started 0.5 s before the timer
    clock.t += 0.25
    timer.mark("imports")  # 0.5 + 0.25: everything since the process started
    clock.t += 0.1
    timer.mark("config")
    clock.t += 0.2
    timer.mark("imports")  # a second share of the same phase adds up
    with timer.phase("fork"):  # what ran before the block is not the block's
        clock.t += 0.05
    clock.t += 1.0
    assert timer.report() == {
        "imports_s": 0.95,
        "config_s": 0.1,
        "fork_s": 0.05,
        "total_s": 2.1,
    }


def test_process_age_is_read_from_proc() -> None:
    age = process_age_s()
    assert age is not None  # Linux: /proc/self/stat
    assert 0.0 <= age < time.monotonic() + 1  # this test process started before the test


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_the_supervisor_imports_neither_the_earnings_job_nor_an_http_library() -> None:
    """What the supervisor imports before forking, every process pays at every start: the
    earnings job's modules only when it runs; the HTTP library once, on purpose (preload)."""
    r = _fresh(
        "import sys, engine.supervisor\n"
        "assert 'engine.earnings.process' not in sys.modules, 'earnings imported'\n"
        "assert 'curl_cffi' not in sys.modules, 'curl_cffi imported'\n"
        "from engine.source.transport import preload\n"
        "preload('curl_cffi')\n"
        "assert 'curl_cffi.requests.impersonate' in sys.modules\n"
    )
    assert r.returncode == 0, r.stderr
