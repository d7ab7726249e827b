"""engine.observe.quality: pure freshness maths and the per-cycle tracker (clock injected)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from engine.observe.quality import (
    MAX_SECTORS,
    OTHER_SECTOR,
    UNKNOWN_SECTOR,
    Level,
    QualityPolicy,
    QualityTracker,
    age_histogram,
    ages_s,
    freshness_levels,
    regular_session,
    sector_labels,
    top_failing,
    us_regular_hours,
)
from engine.source.symbolfile import SymbolMeta

NOW = 1_700_000_000.0


def arr(*xs: int) -> np.ndarray:
    return np.array(xs, dtype=np.int64)


def test_ages_never_negative_nan_when_never_seen() -> None:
    a = ages_s(arr(0, int(NOW) - 10, int(NOW) + 5), NOW)
    assert math.isnan(a[0]) and a[1] == 10 and a[2] == 0


def test_levels_regular_hours() -> None:
    p = QualityPolicy(stale_after_s=300, fresh_s=60)
    ages = np.array([10, 100, 10, 400, np.nan, 400], dtype=np.float64)
    ok = np.array([True, True, False, False, False, True])
    levels = freshness_levels(ages, ok, True, p).tolist()
    assert levels == [Level.FRESH, Level.LAGGING, Level.MISSING, Level.STALE, Level.NEVER,
                      Level.STALE]  # fmt: skip


def test_levels_outside_regular_hours_ignore_age() -> None:
    p = QualityPolicy()
    ages = np.array([10, 86400, 86400, np.nan], dtype=np.float64)
    ok = np.array([True, True, False, False])
    levels = freshness_levels(ages, ok, False, p).tolist()
    assert levels == [Level.FRESH, Level.FRESH, Level.MISSING, Level.NEVER]


def test_age_histogram_is_cumulative() -> None:
    ages = np.array([1, 20, 20, 1000, np.nan], dtype=np.float64)
    buckets, total = age_histogram(ages, (15.0, 60.0))
    assert buckets == ((15.0, 1), (60.0, 3), (math.inf, 4))
    assert total == 1041


def test_sector_labels_bounded() -> None:
    syms = [f"S{i}" for i in range(MAX_SECTORS + 5)] + ["X", "Y"]
    meta = {s: SymbolMeta(sector=f"sector {i:02d}") for i, s in enumerate(syms[:-2])}
    meta["S0"] = SymbolMeta(sector="  Big  ")
    meta["S1"] = SymbolMeta(sector="Big")
    meta["Y"] = SymbolMeta(name="no sector")
    labels = sector_labels(syms, meta)
    assert labels[0] == labels[1] == "Big"  # largest kept, trimmed
    assert labels[-1] == labels[-2] == UNKNOWN_SECTOR
    assert len(set(labels) - {UNKNOWN_SECTOR, OTHER_SECTOR}) == MAX_SECTORS
    assert OTHER_SECTOR in labels
    assert all(len(x) <= 48 for x in sector_labels(["Z"], {"Z": SymbolMeta(sector="s" * 99)}))


def test_top_failing_order_and_limit() -> None:
    names = ["A", "B", "C", "D"]
    missed = np.array([3, 5, 3, 0], dtype=np.int32)
    streak = np.array([1, 0, 3, 0], dtype=np.int32)
    ages = np.array([10, np.nan, 20, 1], dtype=np.float64)
    top = top_failing(names, ["s"] * 4, missed, streak, ages, 2)
    assert [(f.symbol, f.missed, f.streak) for f in top] == [("B", 5, 0), ("C", 3, 3)]
    assert top[0].age_s is None and top[1].age_s == 20
    assert top_failing(names, ["s"] * 4, np.zeros(4, np.int32), streak, ages, 10) == ()


def test_tracker_window_streak_and_sectors() -> None:
    t = QualityTracker(
        ["A", "B", "C", "D"], ["Tech", "Tech", "Energy", UNKNOWN_SECTOR], QualityPolicy(window=2)
    )
    times = arr(int(NOW) - 5, int(NOW) - 5, int(NOW) - 1000, 0)
    for cycle in (1, 2, 3):
        ok = arr(cycle, cycle - 1 if cycle > 1 else 1, cycle, 0)  # B misses from cycle 2 on
        snap = t.observe(cycle=cycle, now=NOW, market_time=times, ok_cycle=ok, regular_hours=True)
    assert snap.cycle == 3 and snap.window == 2
    assert snap.missing == 2 and snap.missing_ratio == 0.5  # B and D
    assert snap.stale == 1  # C: seen 1000 s ago in regular hours
    assert [s.name for s in snap.sectors] == ["Energy", "Tech", UNKNOWN_SECTOR]
    tech = next(s for s in snap.sectors if s.name == "Tech")
    assert (tech.symbols, tech.missing, tech.stale) == (2, 1, 0)
    top = {f.symbol: f for f in snap.top_failing}
    assert top["D"].missed == 2 and top["D"].streak == 3  # window of 2, streak unbounded
    assert top["B"].missed == 2 and top["B"].streak == 2
    assert "A" not in top and "C" not in top
    counts = snap.level_counts()
    assert counts[Level.FRESH] == 1 and counts[Level.STALE] == 1 and counts[Level.NEVER] == 1
    heat = dict((s.name, cells) for s, cells in snap.heatmap())
    assert [c.symbol for c in heat["Tech"]] == ["A", "B"]
    assert heat["Tech"][1].level == Level.MISSING and heat[UNKNOWN_SECTOR][0].age_s is None
    assert t.last is snap


def test_tracker_recovers_when_symbols_come_back() -> None:
    t = QualityTracker(["A"], ["s"], QualityPolicy(window=3))
    for cycle, ok in ((1, 0), (2, 0), (3, 3), (4, 4), (5, 5), (6, 6)):
        snap = t.observe(
            cycle=cycle, now=NOW, market_time=arr(int(NOW)), ok_cycle=arr(ok), regular_hours=False
        )
    assert snap.missing == 0 and snap.top_failing == ()


def test_tracker_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        QualityTracker(["A"], [])
    with pytest.raises(ValueError):
        QualityTracker(["A"], ["s"], QualityPolicy(window=0))
    t = QualityTracker(["A", "B"], ["s", "s"])
    with pytest.raises(ValueError, match="2 symbols"):
        t.observe(cycle=1, now=NOW, market_time=arr(1), ok_cycle=arr(1, 1), regular_hours=True)


def test_for_universe_uses_meta() -> None:
    t = QualityTracker.for_universe(["A", "B"], {"A": SymbolMeta(sector="Energy")})
    assert t.sector_names == ("Energy", UNKNOWN_SECTOR)


def test_tracker_is_fast_enough_for_5000_symbols() -> None:
    import time

    n = 5000
    rng = np.random.default_rng(1)
    t = QualityTracker([f"S{i}" for i in range(n)], [f"sec{i % 12}" for i in range(n)])
    times = (NOW - rng.integers(0, 900, n)).astype(np.int64)
    t0 = time.perf_counter()
    for c in range(1, 21):
        ok = np.where(rng.random(n) < 0.98, c, c - 1).astype(np.int64)
        t.observe(cycle=c, now=NOW, market_time=times, ok_cycle=ok, regular_hours=True)
    per_cycle = (time.perf_counter() - t0) / 20
    assert per_cycle < 0.02, per_cycle


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (dt.datetime(2024, 3, 6, 9, 29), False),  # Wednesday, before the open
        (dt.datetime(2024, 3, 6, 9, 30), True),
        (dt.datetime(2024, 3, 6, 15, 59), True),
        (dt.datetime(2024, 3, 6, 16, 0), False),
        (dt.datetime(2024, 3, 9, 12, 0), False),  # Saturday
        (dt.datetime(2024, 7, 8, 10, 0), True),  # summer time
    ],
)
def test_us_regular_hours(when: dt.datetime, expected: bool) -> None:
    from engine.observe.quality import NEW_YORK

    assert us_regular_hours(when.replace(tzinfo=NEW_YORK).timestamp()) is expected


def test_regular_session_follows_the_quotes_not_the_clock() -> None:
    """Thanksgiving 2026, 11:00 New York: a weekday's regular hours by the clock, but the
    exchange is closed and every quote says so - quotes not moving then are not stale."""
    from engine.observe.quality import NEW_YORK

    thanksgiving = dt.datetime(2026, 11, 26, 11, 0, tzinfo=NEW_YORK).timestamp()
    assert us_regular_hours(thanksgiving) is True
    assert regular_session(regular=0, valid=4997, now=thanksgiving) is False
    assert regular_session(regular=4990, valid=4997, now=thanksgiving) is True
    assert regular_session(regular=2000, valid=4997, now=thanksgiving) is False  # a minority
    # no valid quote this cycle (Yahoo unreachable): only the clock is left
    assert regular_session(regular=0, valid=0, now=thanksgiving) is True
    saturday = dt.datetime(2026, 11, 28, 11, 0, tzinfo=NEW_YORK).timestamp()
    assert regular_session(regular=0, valid=0, now=saturday) is False
