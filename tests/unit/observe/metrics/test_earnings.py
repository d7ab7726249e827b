"""engine.observe.metrics.earnings: one record per earnings-calendar sync."""

from __future__ import annotations

from engine.observe import metrics
from tests.unit.observe.metrics.support import value


def test_record_earnings_sync() -> None:
    metrics.record_earnings_sync(True, fetched=40, changed=3, seconds=2.5, now=500.0)
    metrics.record_earnings_sync(False, fetched=0, changed=0, seconds=1.0, now=900.0)
    reg = metrics.registry()
    assert value(reg, "ingestion_earnings_syncs_total", outcome="ok") == 1
    assert value(reg, "ingestion_earnings_syncs_total", outcome="failed") == 1
    assert value(reg, "ingestion_earnings_events_fetched_total") == 40
    assert value(reg, "ingestion_earnings_events_changed_total") == 3
    assert value(reg, "ingestion_earnings_last_sync_duration_seconds") == 1.0
    assert value(reg, "ingestion_earnings_last_success_timestamp_seconds") == 500.0
