"""engine.observe.metrics.quality_collector: data-quality gauges computed at scrape time."""

from __future__ import annotations

import numpy as np

from engine.observe import metrics
from engine.observe.quality import QualityTracker
from tests.unit.observe.metrics.support import value


def test_quality_collector() -> None:
    tracker = QualityTracker(["A", "B", "C", "D"], ["Tech", "Tech", "Energy", "Unknown"])
    times = np.array([990, 600, 0, 995], dtype=np.int64)
    ok = np.array([3, 2, 0, 3], dtype=np.int64)
    snap = tracker.observe(cycle=3, now=1000.0, market_time=times, ok_cycle=ok, regular_hours=True)
    reg = metrics.registry([metrics.QualityCollector(lambda: snap)])
    assert value(reg, "ingestion_quality_symbols") == 4
    assert value(reg, "ingestion_quality_symbols_missing") == 2
    assert value(reg, "ingestion_quality_missing_ratio") == 0.5
    assert value(reg, "ingestion_quality_symbols_stale") == 1
    assert value(reg, "ingestion_quality_sector_symbols", sector="Tech") == 2
    assert value(reg, "ingestion_quality_sector_missing", sector="Energy") == 1
    assert value(reg, "ingestion_quality_symbol_age_seconds_bucket", le="15.0") == 2
    assert value(reg, "ingestion_quality_symbol_age_seconds_bucket", le="+Inf") == 3
    top = [
        (s.labels["symbol"], s.value)
        for f in reg.collect()
        if f.name == "ingestion_quality_failing_symbol_missed_cycles"
        for s in f.samples
    ]
    assert sorted(top) == [("B", 1.0), ("C", 1.0)]
    assert list(metrics.QualityCollector(lambda: None).collect()) == []
