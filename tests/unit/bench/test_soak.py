"""bench/soak.py's pure analysis: stalls net of dependency downtime, growth, error rate."""

from __future__ import annotations

from typing import Any

from bench.soak import _overlap, error_rate, growth, stalls


def _samples(times_counts: list[tuple[float, dict[str, float]]]) -> list[dict[str, Any]]:
    base = {"fetch": 0.0, "cycle": 0.0, "publish": 0.0, "store": 0.0}
    return [{"t": t, "counters": {**base, **c}} for t, c in times_counts]


def test_overlap_merges_windows() -> None:
    assert _overlap(0, 10, [(2, 4), (3, 6), (8, 20)]) == 6.0
    assert _overlap(0, 10, []) == 0.0


def test_stall_is_the_longest_gap_between_progress() -> None:
    s = _samples([(t, {"fetch": float(t if t < 20 or t >= 50 else 20)}) for t in range(0, 61)])
    out = stalls(s, {}, 0.0, 60.0)
    assert out["fetch"]["max_stall_s"] == 30.0  # counter flat from t=20 to t=50
    assert out["fetch"]["from_s"] == 20.0
    assert out["publish"]["max_stall_s"] == 60.0  # never progressed: the whole span


def test_dependency_downtime_is_not_a_stall() -> None:
    s = _samples([(t, {"publish": float(t if t < 20 or t >= 50 else 20)}) for t in range(0, 61)])
    assert stalls(s, {"nats": [(22.0, 47.0)]}, 0.0, 60.0)["publish"]["max_stall_s"] == 5.0
    # PostgreSQL down does not excuse the publisher
    assert stalls(s, {"postgres": [(22.0, 47.0)]}, 0.0, 60.0)["publish"]["max_stall_s"] == 30.0


def test_growth_compares_first_and_last_minute() -> None:
    s = [{"t": float(t), "rss_kb": 100 if t < 100 else 110} for t in range(0, 300)]
    g = growth(s, "rss_kb", 0.0, 299.0)
    assert g["first"] == 100 and g["last"] == 110 and g["growth"] == 0.1
    assert growth([], "rss_kb", 0.0, 10.0)["growth"] is None


def test_incomplete_cycles_count_as_failed_symbols() -> None:
    cycles = [{"requested": 100, "failed": 1, "missing": 2, "rejected": {"stale": 1}}]
    r = error_rate(cycles, incomplete=1, n_symbols=100)
    assert r["requested"] == 200 and r["failed"] == 101
    assert r["symbol_error_rate"] == 101 / 200 and r["data_rate"] == 3 / 200
