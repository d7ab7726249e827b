"""Pure timing: cycle grid, overruns, backoff maths."""

from __future__ import annotations

import pytest

from engine.runtime.schedule import next_start, spread_window


class TestNextStart:
    def test_on_time(self) -> None:
        """A cycle that finished within its interval starts the next on the grid."""
        assert next_start(100.0, 10.0, 103.0) == (110.0, 0)

    def test_overrun_skips_missed_ticks(self) -> None:
        """A 25 s fetch at a 10 s interval misses two ticks and resumes on the grid."""
        assert next_start(100.0, 10.0, 125.0) == (130.0, 2)

    def test_exactly_on_tick(self) -> None:
        """Finishing exactly at the next tick starts it now, with no overrun."""
        assert next_start(100.0, 10.0, 110.0) == (110.0, 0)

    def test_never_in_the_past(self) -> None:
        """The result is never before now."""
        for now in (100.0, 109.999, 110.001, 1000.5):
            start, _ = next_start(100.0, 10.0, now)
            assert start >= now

    def test_bad_interval(self) -> None:
        """A non-positive interval is refused."""
        with pytest.raises(ValueError):
            next_start(0, 0, 1)

    def test_spread_window(self) -> None:
        """Spreading uses 90% of the interval; at-once uses none."""
        assert spread_window(10, True) == 9.0 and spread_window(10, False) == 0.0


class TestFailureRateWindow:
    def test_raises_once_and_clears(self) -> None:
        """Above 5% over 5 min raises once; falling back clears once."""
        from engine.observe.alerts import FailureRateWindow

        w = FailureRateWindow(window_s=300, threshold=0.05)
        w.add(0, 5000, 100)
        assert w.check(0) is None  # 2%
        w.add(10, 5000, 600)
        assert w.check(10) == "raised"  # 7%
        w.add(15, 1000, 0)
        assert w.check(15) is None  # 700/11000 = 6.4%: still alerting, no new event
        w.add(20, 5000, 0)
        assert w.check(20) == "cleared"  # 700/16000 = 4.4%

    def test_window_slides(self) -> None:
        """Old cycles leave the window."""
        from engine.observe.alerts import FailureRateWindow

        w = FailureRateWindow(window_s=300, threshold=0.05)
        w.add(0, 100, 50)
        assert w.check(0) == "raised"
        w.add(301, 100, 0)
        assert w.rate(301) == 0.0 and w.check(301) == "cleared"
