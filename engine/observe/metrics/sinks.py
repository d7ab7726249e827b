"""The publisher's side (publisher process): rings, JetStream, outbox, DLQ, store, cache."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter

from engine.observe.metrics.multiprocess import deltas
from engine.observe.metrics.multiprocess import families as _m
from engine.stats import CacheStats, StoreStats

StoreStatsView = StoreStats
CacheStatsView = CacheStats


def set_ring_occupancy(worker: int, records: int, capacity: int) -> None:
    """Supervisor, before each scrape, for every ring (``Ring.occupancy()``, capacity)."""
    m = _m()
    w = str(worker)
    m.ring_occupancy.labels(worker=w).set(records)
    m.ring_capacity.labels(worker=w).set(capacity)


def record_ring_full(worker: int) -> None:
    """Worker, when its ring was full and it had to wait (``RingSink._on_full``)."""
    _m().ring_full_waits.labels(worker=str(worker)).inc()


def record_publish_retries(messages: int) -> None:
    """Publisher, messages re-published after a missing/failed ack (``JetStreamPublisher``)."""
    if messages > 0:
        _m().publish_retries.inc(messages)


def set_dlq_depth(messages: int) -> None:
    """Publisher, periodically (stream info of the dead-letter stream)."""
    _m().dlq_depth.set(messages)


def set_outbox_depth(messages: int, size_bytes: int | None = None) -> None:
    """Publisher, when the outbox grows or shrinks (``Outbox.append``/``remove``: a running
    count is cheaper than ``count_messages()``), with ``Outbox.size_bytes``."""
    m = _m()
    m.outbox_depth.set(messages)
    if size_bytes is not None:
        m.outbox_bytes.set(size_bytes)


def _count_totals(
    key: str, totals: Mapping[str, int], outages: int, by_outcome: Counter, outage: Counter
) -> None:
    """Turn the running totals of a stats snapshot (per outcome, and outages) into counter
    increments since the previous snapshot of ``key``."""
    for name, d in deltas(key, {**totals, "_outages": outages}):
        if name == "_outages":
            outage.inc(d)
        else:
            by_outcome.labels(outcome=name).inc(d)


def record_store_stats(stats: StoreStatsView) -> None:
    """Publisher, after each flush (``Publisher._committer``): ``QuoteStore.stats()``."""
    m = _m()
    totals = {
        "written": stats.rows_written,
        "duplicate": stats.rows_duplicate,
        "expired": stats.rows_expired,
        "rejected": stats.rows_rejected,
        "dropped": stats.rows_dropped,
    }
    _count_totals("store", totals, stats.outages, m.store_rows, m.store_outages)
    m.store_buffered.set(stats.rows_buffered)
    m.store_spilled.set(stats.rows_spilled)
    m.store_up.set(1 if stats.available else 0)


def record_store_flush(seconds: float) -> None:
    """Publisher, duration of each ``QuoteStore.flush`` in ``Publisher._committer``."""
    _m().store_flush.observe(seconds)


def record_store_reconciled(rows: int) -> None:
    """Publisher, at start: rows the stream held and PostgreSQL lacked, inserted now."""
    if rows > 0:
        _m().store_reconciled.inc(rows)


def record_cache_stats(stats: CacheStatsView) -> None:
    """Publisher, after each drained chunk or periodically: ``QuoteCache.stats()``."""
    m = _m()
    totals = {
        "written": stats.keys_written,
        "skipped_older": stats.keys_skipped_older,
        "unencodable": stats.keys_unencodable,
    }
    _count_totals("cache", totals, stats.outages, m.cache_writes, m.cache_outages)
    m.cache_pending.set(stats.pending_symbols)
    m.cache_up.set(1 if stats.available else 0)
