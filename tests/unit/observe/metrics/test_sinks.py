"""engine.observe.metrics.sinks: rings, publisher, outbox, DLQ, store and cache statistics."""

from __future__ import annotations

import msgspec

from engine.observe import metrics
from tests.unit.observe.metrics.support import value


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


class _Cache(msgspec.Struct):
    available: bool = True
    keys_written: int = 0
    keys_skipped_older: int = 0
    keys_unencodable: int = 0
    pending_symbols: int = 0
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


def test_cache_stats_are_turned_into_counter_increments() -> None:
    metrics.record_cache_stats(_Cache(keys_written=10, pending_symbols=3))
    metrics.record_cache_stats(_Cache(keys_written=25, keys_skipped_older=2, outages=1))
    metrics.record_cache_stats(_Cache(keys_written=5, available=False))  # restarted from zero
    reg = metrics.registry()
    assert value(reg, "ingestion_cache_writes_total", outcome="written") == 30
    assert value(reg, "ingestion_cache_writes_total", outcome="skipped_older") == 2
    assert value(reg, "ingestion_cache_outages_total") == 1
    assert value(reg, "ingestion_cache_pending_symbols") == 0
    assert value(reg, "ingestion_cache_up") == 0


def test_store_and_cache_totals_are_tracked_apart() -> None:
    metrics.record_store_stats(_Store(rows_written=100, outages=2))
    metrics.record_cache_stats(_Cache(keys_written=40, outages=1))
    reg = metrics.registry()
    assert value(reg, "ingestion_store_outages_total") == 2
    assert value(reg, "ingestion_cache_outages_total") == 1
    assert value(reg, "ingestion_cache_writes_total", outcome="written") == 40


def test_rings_publisher_outbox_and_dlq() -> None:
    metrics.set_ring_occupancy(1, 10, 1024)
    metrics.record_ring_full(1)
    metrics.record_publish_retries(0)
    metrics.record_publish_retries(4)
    metrics.set_dlq_depth(6)
    metrics.set_outbox_depth(12, 4096)
    metrics.set_outbox_depth(8)
    metrics.record_store_flush(0.03)
    reg = metrics.registry()
    assert value(reg, "ingestion_ring_occupancy_records", worker="1") == 10
    assert value(reg, "ingestion_ring_capacity_records", worker="1") == 1024
    assert value(reg, "ingestion_ring_full_waits_total", worker="1") == 1
    assert value(reg, "ingestion_publish_retries_total") == 4
    assert value(reg, "ingestion_dlq_depth_messages") == 6
    assert value(reg, "ingestion_outbox_depth_messages") == 8
    assert value(reg, "ingestion_outbox_size_bytes") == 4096
    assert value(reg, "ingestion_store_flush_seconds_count") == 1
