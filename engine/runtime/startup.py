"""How long the engine took to start, phase by phase (logged once as ``engine_started``).

The supervisor's phases run one after the other; :data:`TIMER` (created when the CLI imports
this module) adds the time of each to its name: ``imports`` (from the process's start, read from
``/proc``, to the CLI's ``main``, plus the supervisor's own modules), ``config``, ``symbols``
(the symbols file, the shards and the shared memory), ``identity`` (the last published quotes
read back), ``fork`` and ``children_ready`` (until every worker has its crumb and the publisher
its PostgreSQL and Redis connections). The children report their own share of the last phase
(``crumb_s``, ``connect_s`` in their ready message), so the log says which one held it up.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def process_age_s() -> float | None:
    """Seconds since this process started (Linux ``/proc``; None where it cannot be read).
    The kernel counts in clock ticks (10 ms)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime_s - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class StartupTimer:
    """Seconds per named phase, from the process's start on (``clock`` is injected)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, age_s: float | None = None):
        self._clock = clock
        self.started = clock() - (age_s or 0.0)
        self._last = self.started
        self.phases: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        """Everything since the last mark (or the start) was ``phase``."""
        now = self._clock()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._last
        self._last = now

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """The block is ``name``; what ran before it (since the last mark) is not counted."""
        self._last = self._clock()
        try:
            yield
        finally:
            self.mark(name)

    def total_s(self) -> float:
        return self._clock() - self.started

    def report(self) -> dict[str, float]:
        """``{phase}_s`` rounded to the millisecond, and ``total_s``."""
        out = {f"{k}_s": round(v, 3) for k, v in self.phases.items()}
        out["total_s"] = round(self.total_s(), 3)
        return out


TIMER = StartupTimer(age_s=process_age_s())
"""This process's start-up (the supervisor's; a forked child inherits a stale copy)."""
