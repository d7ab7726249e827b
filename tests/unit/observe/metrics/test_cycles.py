"""engine.observe.metrics.cycles: one completed cycle, overruns, the failure-rate hook."""

from __future__ import annotations

import pytest

from engine.observe import metrics
from tests.unit.observe.metrics.support import summary, value


def test_record_cycle() -> None:
    metrics.record_cycle(summary(), now=1000.0)
    metrics.record_cycle(summary(failed=10, errors={"RateLimitedError": 1}), now=2000.0)
    reg = metrics.registry()
    assert value(reg, "ingestion_cycles_total", outcome="ok") == 1
    assert value(reg, "ingestion_cycles_total", outcome="degraded") == 1
    assert value(reg, "ingestion_symbols_requested_total") == 200
    assert value(reg, "ingestion_symbols_failed_total") == 10
    assert value(reg, "ingestion_quotes_valid_total") == 180
    assert value(reg, "ingestion_quotes_rejected_total", reason="price_out_of_range") == 6
    assert value(reg, "ingestion_messages_total", outcome="published") == 116
    assert value(reg, "ingestion_messages_total", outcome="dead_lettered") == 10
    assert value(reg, "ingestion_cycle_duration_seconds_count") == 2
    assert value(reg, "ingestion_last_successful_cycle_timestamp_seconds") == 1000.0
    assert value(reg, "ingestion_symbols_per_second") == pytest.approx(190.0)


def test_overruns_and_failure_rate() -> None:
    metrics.record_overrun(0)
    metrics.record_overrun(3)
    metrics.set_failure_rate(0.08, alerting=True)
    reg = metrics.registry()
    assert value(reg, "ingestion_cycle_overruns_total") == 3
    assert value(reg, "ingestion_symbol_failure_ratio_5m") == 0.08
    assert value(reg, "ingestion_failure_rate_alert") == 1
    metrics.set_failure_rate(0.0, alerting=False)
    assert value(reg, "ingestion_failure_rate_alert") == 0
