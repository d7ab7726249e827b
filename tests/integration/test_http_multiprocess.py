"""/metrics aggregates what several forked processes recorded (prometheus multiprocess mode)."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.config import Config, HttpSettings
from engine.observe import metrics
from engine.observe.http import HttpServer
from engine.source.breaker import BreakerState
from tests.integration.test_http_support import FakeSource, multiprocess_metrics

pytestmark = pytest.mark.integration

WORKERS = 4


@pytest.fixture
def mp_dir(tmp_path: Path) -> Iterator[Path]:
    metrics.reset()
    with multiprocess_metrics(tmp_path / "prom") as d:
        yield d
    metrics.reset()


def _worker(index: int, batches: int, go: mp.synchronize.Event, done: mp.synchronize.Event) -> None:
    """A stand-in for engine.worker: what it records per batch, then stays alive until told."""
    try:
        for i in range(batches):
            metrics.record_batch(50, 0.03 * (1 + i % 3), "RateLimitedError" if i == 0 else None)
        metrics.record_throttle()
        metrics.record_ring_full(index)
        metrics.set_breaker_state(BreakerState(index % 2))  # livemostrecent: the newest report wins
        done.set()
        go.wait(20)
    finally:
        os._exit(0)


def _publisher(done: mp.synchronize.Event) -> None:
    try:
        metrics.set_dlq_depth(17)
        metrics.record_publish_retries(5)
        metrics.record_store_flush(0.02)
        done.set()
    finally:
        os._exit(0)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(s: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return s[(name, frozenset(labels.items()))]


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as sess, sess.get(url + "/metrics") as r:
        assert r.status == 200
        return samples(await r.text())


async def test_metrics_of_forked_processes_add_up(mp_dir: Path) -> None:
    ctx = mp.get_context("fork")
    metrics.set_build_info("0.0.0-test")
    metrics.record_batch(50, 0.05)  # the supervisor itself records too
    go = ctx.Event()
    dones = [ctx.Event() for _ in range(WORKERS + 1)]
    batches = [10 * (i + 1) for i in range(WORKERS)]  # 10 + 20 + 30 + 40
    procs = [
        ctx.Process(target=_worker, args=(i, batches[i], go, dones[i])) for i in range(WORKERS)
    ]
    procs.append(ctx.Process(target=_publisher, args=(dones[-1],)))
    for p in procs:
        p.start()
    try:
        for d in dones:
            assert d.wait(20)
        async with HttpServer.serve(
            Config(http=HttpSettings(port=0)), FakeSource(cycles=2), checks={}
        ) as srv:
            s = await scrape(srv.url)
            total = 1 + sum(batches)
            assert val(s, "ingestion_fetch_requests_total") == total
            assert val(s, "ingestion_fetch_failures_total", error="RateLimitedError") == WORKERS
            ok_count = val(s, "ingestion_fetch_latency_seconds_count", outcome="ok")
            assert ok_count == total - WORKERS
            assert val(s, "ingestion_fetch_latency_seconds_bucket", outcome="ok", le="+Inf") == (
                ok_count
            )
            assert val(s, "ingestion_rate_limit_throttles_total") == WORKERS
            for i in range(WORKERS):
                assert val(s, "ingestion_ring_full_waits_total", worker=str(i)) == 1
            assert val(s, "ingestion_dlq_depth_messages") == 17
            assert val(s, "ingestion_publish_retries_total") == 5
            assert val(s, "ingestion_build_info", version="0.0.0-test", python=_py()) == 1
            # the FakeSource's refresh (supervisor) set the breaker last: closed
            assert val(s, "ingestion_breaker_state") == 0
            # one series per metric: no per-process (pid) label leaks out
            assert not any(("pid" in dict(lbl)) for _, lbl in s)

            go.set()
            for p in procs:
                p.join(10)
                assert p.exitcode == 0 and p.pid is not None
                metrics.mark_process_dead(p.pid)
            s = await scrape(srv.url)
            assert val(s, "ingestion_fetch_requests_total") == total  # counters survive
            assert val(s, "ingestion_dlq_depth_messages") == 17  # mostrecent: last known kept
    finally:
        go.set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()


def _py() -> str:
    import sys

    return "{}.{}.{}".format(*sys.version_info[:3])
