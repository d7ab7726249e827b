"""engine.observe.metrics: names, recording functions, multiprocess aggregation across forked
processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.observe import metrics
from engine.observe.quality import QualityTracker
from engine.stats import CycleStats, FetchCounts, PublishCounts


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.reset()
    yield
    metrics.reset()


@pytest.fixture
def mp_dir(tmp_path: Path) -> Iterator[Path]:
    d = metrics.setup_multiprocess(tmp_path / "prom")
    try:
        yield d
    finally:
        metrics.teardown_multiprocess()


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def summary(**kw: object) -> CycleStats:
    base: dict[str, object] = {
        "cycle": 7,
        "requested": 100,
        "fetched": 95,
        "valid": 90,
        "unchanged": 30,
        "stale": 2,
        "missing": 5,
        "failed": 0,
        "requests": 2,
        "attempts": 3,
        "rejected": {"price_out_of_range": 3, "stale": 2},
        "errors": {},
        "published": 58,
        "deduplicated": 2,
        "publish_failed": 0,
        "dlq": 5,
        "fetch_seconds": 0.5,
        "seconds": 0.8,
    }
    base.update(kw)
    publish = {"published", "deduplicated", "publish_failed", "dlq", "outboxed"}
    cycle = {"cycle", "fetch_seconds", "seconds"}
    fetch = {k: v for k, v in base.items() if k not in publish | cycle}
    pub = {k.removeprefix("publish_"): v for k, v in base.items() if k in publish}
    return CycleStats(
        **{k: v for k, v in base.items() if k in cycle},  # type: ignore[arg-type]
        fetch=msgspec.convert(fetch, FetchCounts),
        publish=msgspec.convert(pub, PublishCounts),
    )


def test_names_follow_the_conventions() -> None:
    metrics.set_build_info("1.2.3")
    metrics.record_batch(50, 0.2)
    metrics.record_cycle(summary())
    text = generate_latest(metrics.registry()).decode()
    names = {m.name for m in text_string_to_metric_families(text)} - {
        m.name for m in text_string_to_metric_families(text) if m.name.endswith("_created")
    }
    assert names, text
    for name in names:
        assert name.startswith("ingestion_"), name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
    types = {m.name: m.type for m in text_string_to_metric_families(text) if m.name in names}
    for name, typ in types.items():
        if typ == "counter":
            assert "_total" in text and f"{name}_total" in text
        if "latency" in name or "duration" in name:
            assert name.endswith("_seconds"), name


def test_no_symbol_label_outside_the_quality_collector() -> None:
    metrics.record_batch(50, 0.2, "RateLimitedError")
    metrics.record_cycle(summary())
    metrics.set_ring_occupancy(0, 10, 1024)
    text = generate_latest(metrics.registry()).decode()
    assert "symbol=" not in text


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
    assert metrics.breaker_value("OPEN") == 2
    assert metrics.breaker_value("half_open") == 1
    assert metrics.breaker_value(0) == 0
    with pytest.raises(ValueError, match="unknown breaker state"):
        metrics.breaker_value("ajar")
    with pytest.raises(ValueError):
        metrics.breaker_value(3)
    metrics.set_breaker_state("open")
    assert value(metrics.registry(), "ingestion_breaker_state") == 2


class _Store(msgspec.Struct):
    available: bool = True
    rows_written: int = 0
    rows_duplicate: int = 0
    rows_expired: int = 0
    rows_rejected: int = 0
    rows_dropped: int = 0
    rows_buffered: int = 0
    rows_spilled: int = 0
    outages: int = 0


def test_store_stats_are_turned_into_counter_increments() -> None:
    metrics.record_store_stats(_Store(rows_written=100, rows_buffered=7))
    metrics.record_store_stats(_Store(rows_written=150, rows_duplicate=4, outages=1))
    metrics.record_store_stats(_Store(rows_written=150, rows_duplicate=4, outages=1))
    reg = metrics.registry()
    assert value(reg, "ingestion_store_rows_total", outcome="written") == 150
    assert value(reg, "ingestion_store_rows_total", outcome="duplicate") == 4
    assert value(reg, "ingestion_store_outages_total") == 1
    # a new store (restarted publisher) starts from zero: its totals are added, never subtracted
    metrics.record_store_stats(_Store(rows_written=20, available=False))
    assert value(reg, "ingestion_store_rows_total", outcome="written") == 170
    assert value(reg, "ingestion_store_up") == 0


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


def _child(n: int, worker: int) -> None:
    try:
        for _ in range(n):
            metrics.record_batch(10, 0.1)
        metrics.record_batch(10, 1.0, "UpstreamTransportError")
        metrics.set_ring_occupancy(worker, 100 * (worker + 1), 1024)
        metrics.set_breaker_state(worker % 3)
    finally:
        os._exit(0)


def test_multiprocess_sums_children_and_forgets_dead_live_gauges(mp_dir: Path) -> None:
    metrics.set_build_info("9.9.9")
    metrics.record_batch(10, 0.1)  # the parent counts too
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_child, args=(5 * (i + 1), i)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    reg = metrics.registry()
    assert value(reg, "ingestion_fetch_requests_total") == 1 + (5 + 10 + 15) + 3
    assert value(reg, "ingestion_fetch_failures_total", error="UpstreamTransportError") == 3
    assert value(reg, "ingestion_fetch_latency_seconds_bucket", outcome="ok", le="0.1") == 31
    assert value(reg, "ingestion_ring_occupancy_records", worker="2") == 300
    assert value(reg, "ingestion_build_info", version="9.9.9", python=_py()) == 1
    for p in procs:
        assert p.pid is not None
        metrics.mark_process_dead(p.pid)
    reg = metrics.registry()
    assert value(reg, "ingestion_ring_occupancy_records", worker="2") is None  # live gauge gone
    assert value(reg, "ingestion_fetch_requests_total") == 34  # counters stay summed


def test_setup_wipes_a_previous_run(tmp_path: Path) -> None:
    d = tmp_path / "prom"
    metrics.setup_multiprocess(d)
    metrics.record_batch(1, 0.1)
    metrics.teardown_multiprocess()
    assert any(d.glob("*.db"))
    metrics.setup_multiprocess(d)
    try:
        assert value(metrics.registry(), "ingestion_fetch_requests_total") == 0
    finally:
        metrics.teardown_multiprocess()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_setup_without_a_directory_makes_and_removes_one() -> None:
    d = metrics.setup_multiprocess()
    assert d.is_dir() and metrics.multiprocess_dir() == d
    metrics.teardown_multiprocess()
    assert not d.exists()


def _py() -> str:
    import sys

    return "{}.{}.{}".format(*sys.version_info[:3])
