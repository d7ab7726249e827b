"""Cycle timing (pure functions; the clock is passed in).

Cycles start on a fixed grid ``t0 + k * interval``. Cycles never overlap: when a cycle's fetch
phase runs past the next grid point, the ticks it covered are skipped (counted as overruns) and
the next cycle starts at the first grid point after it finished, so the grid never drifts.
"""

from __future__ import annotations

import math


def next_start(scheduled: float, interval_s: float, now: float) -> tuple[float, int]:
    """The grid point to start the next cycle at, and how many grid points were missed.

    ``scheduled`` is when the previous cycle was due to start; ``now`` is when it finished
    fetching. Returns ``(scheduled + k * interval_s, k - 1)`` with the smallest k >= 1 such that
    the start is not in the past.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be > 0")
    k = max(1, math.ceil((now - scheduled) / interval_s))
    if scheduled + k * interval_s < now:  # float rounding
        k += 1
    return scheduled + k * interval_s, k - 1


def spread_window(interval_s: float, spread: bool) -> float:
    """Seconds over which a cycle's batches are spread (90% of the interval, or 0 = at once)."""
    return 0.9 * interval_s if spread else 0.0
