"""engine.observe.metrics.multiprocess: multiprocess aggregation across forked processes, set-up
and teardown, running-total deltas."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from pathlib import Path

from engine.observe import metrics
from engine.observe.metrics import multiprocess
from tests.unit.observe.metrics.support import value


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


def test_deltas_count_increases_and_restarts_from_zero() -> None:
    assert list(multiprocess.deltas("k", {"a": 5, "b": 0})) == [("a", 5)]
    assert list(multiprocess.deltas("k", {"a": 7, "b": 0})) == [("a", 2)]
    assert list(multiprocess.deltas("k", {"a": 7, "b": 0})) == []
    assert list(multiprocess.deltas("k", {"a": 3, "b": 0})) == [("a", 3)]  # the source restarted
    assert list(multiprocess.deltas("other", {"a": 3})) == [("a", 3)]  # keys are apart
    metrics.reset()
    assert list(multiprocess.deltas("k", {"a": 3})) == [("a", 3)]  # reset forgets the totals


def _py() -> str:
    return "{}.{}.{}".format(*sys.version_info[:3])
