"""engine.observe.metrics.fetch: batch requests, retries, rate limit and breaker."""

from __future__ import annotations

import pytest

from engine.observe import metrics
from engine.source.breaker import BreakerState
from tests.unit.observe.metrics.support import value


def test_record_batch_counts_requests_failures_and_latency() -> None:
    metrics.record_batch(50, 0.2)
    metrics.record_batch(50, 0.4)
    metrics.record_batch(50, 3.0, "UpstreamTransportError")
    reg = metrics.registry()
    assert value(reg, "ingestion_fetch_requests_total") == 3
    assert value(reg, "ingestion_fetch_failures_total", error="UpstreamTransportError") == 1
    assert value(reg, "ingestion_fetch_latency_seconds_count", outcome="ok") == 2
    assert value(reg, "ingestion_fetch_latency_seconds_sum", outcome="ok") == pytest.approx(0.6)
    assert value(reg, "ingestion_fetch_latency_seconds_count", outcome="error") == 1
    assert value(reg, "ingestion_fetch_symbol_latency_seconds_sum") == pytest.approx(0.6 / 50)
    assert value(reg, "ingestion_fetch_symbol_latency_seconds_bucket", le="0.005") == 1
    assert value(reg, "ingestion_fetch_symbol_latency_seconds_bucket", le="0.01") == 2


def test_retries_throttles_and_waits() -> None:
    metrics.record_retry("RateLimitedError")
    metrics.record_retry("RateLimitedError")
    metrics.record_throttle()
    metrics.record_rate_limit_wait(0.5)
    metrics.record_rate_limit_wait(0.0)  # no wait: nothing recorded
    reg = metrics.registry()
    assert value(reg, "ingestion_fetch_retries_total", error="RateLimitedError") == 2
    assert value(reg, "ingestion_rate_limit_throttles_total") == 1
    assert value(reg, "ingestion_rate_limit_wait_seconds_total") == 0.5


def test_rate_limit_and_headroom() -> None:
    assert metrics.budget_headroom(400, 100) == 0.75
    assert metrics.budget_headroom(50, 100) == 0.0
    assert metrics.budget_headroom(0, 100) == 0.0
    metrics.set_rate_limit(12.5, 50.0, 200.0, 150)
    reg = metrics.registry()
    assert value(reg, "ingestion_rate_limit_headroom_ratio") == 0.25
    assert value(reg, "ingestion_rate_limit_cycle_needed_requests") == 150
    assert value(reg, "ingestion_rate_limit_requests_per_second") == 12.5


def test_breaker_values() -> None:
    assert [metrics.breaker_value(s) for s in BreakerState] == [0, 1, 2]
    assert [metrics.breaker_name(s) for s in BreakerState] == ["closed", "half_open", "open"]
    metrics.set_breaker_state(BreakerState.OPEN)
    assert value(metrics.registry(), "ingestion_breaker_state") == 2


def test_set_universe() -> None:
    """The universe in use: its size, the lines skipped and the entries translated."""
    metrics.set_universe(4998, 2, 3)
    reg = metrics.registry()
    assert value(reg, "ingestion_universe_symbols") == 4998
    assert value(reg, "ingestion_symbols_skipped") == 2
    assert value(reg, "ingestion_symbols_translated") == 3
