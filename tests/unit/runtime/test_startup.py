"""The start-up timer: seconds per phase from the process's start (clock injected)."""

from __future__ import annotations

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
