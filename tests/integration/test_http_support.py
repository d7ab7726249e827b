"""Shared helpers (no tests here) for the observability tests: a StatusSource with
representative data, a recorder that exercises every function of engine.observe.metrics, and the
engine's HTTP endpoint served from a background thread (for external scrapers: Prometheus,
Chromium). Spare ports and waiting for them: :mod:`testkit.net`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine import __version__
from engine.config import Config, HttpSettings
from engine.observe import metrics
from engine.observe.http import Check, HttpServer, RateView
from engine.observe.quality import QualitySnapshot, QualityTracker
from engine.source.breaker import BreakerState
from engine.source.universe import load_symbols
from engine.stats import CycleStats, FetchCounts, PublishCounts
from testkit import ROOT


def summary(cycle: int, *, failed: int = 0, seconds: float = 1.2) -> CycleStats:
    return CycleStats(
        cycle=cycle,
        fetch=FetchCounts(
            requested=5000,
            fetched=4980 - failed,
            valid=4950 - failed,
            unchanged=1200,
            stale=3,
            missing=20,
            failed=failed,
            requests=100,
            attempts=104,
            rejected={"price_out_of_range": 12, "missing_volume": 18},
            errors={"UpstreamTransportError": 1} if failed else {},
        ),
        publish=PublishCounts(published=3700 - failed, deduplicated=50, failed=0, dlq=30),
        fetch_seconds=seconds * 0.8,
        seconds=seconds,
    )


class FakeSource:
    """The supervisor's view, with the real 5,000-symbol universe and a few failing symbols."""

    def __init__(self, *, cycles: int = 12, now: float | None = None) -> None:
        now = time.time() if now is None else now
        universe = load_symbols(ROOT / "symbols.json")
        self.symbols = universe.symbols
        self.tracker = QualityTracker.for_universe(universe.symbols, universe.meta)
        self.cycles: list[CycleStats] = []
        self.breaker = BreakerState.CLOSED
        self.rate: RateView | None = RateView(current_rps=12.5, max_rps=50.0, headroom_ratio=0.75)
        self.refreshes = 0
        n = len(self.symbols)
        rng = np.random.default_rng(7)
        self.market_time = (now - rng.integers(1, 240, n)).astype(np.int64)
        self.market_time[rng.choice(n, 40, replace=False)] = int(now) - 900  # stale
        self.market_time[:3] = 0  # never seen
        self.ok = np.zeros(n, dtype=np.int64)
        flaky = rng.choice(n, 150, replace=False)
        for c in range(1, cycles + 1):
            self.ok[:] = c
            self.ok[flaky[: 10 + c]] = c - 1  # more and more of them miss
            self.ok[:3] = 0
            self.ok[3:8] = 0  # five symbols never answer
            self.tracker.observe(
                cycle=c, now=now, market_time=self.market_time, ok_cycle=self.ok, regular_hours=True
            )
            self.cycles.append(summary(c, failed=50 if c % 4 == 0 else 0))

    # -- StatusSource -------------------------------------------------------------------------

    def recent_cycles(self) -> Sequence[CycleStats]:
        return self.cycles[-30:]

    def breaker_state(self) -> int | str:
        return self.breaker

    def rate_limit(self) -> RateView | None:
        return self.rate

    def quality(self) -> QualitySnapshot | None:
        return self.tracker.last

    def refresh_metrics(self) -> None:
        self.refreshes += 1
        metrics.set_breaker_state(self.breaker)
        if self.rate is not None:
            r = self.rate
            metrics.set_rate_limit(r.current_rps, r.max_rps, 400.0, 100)
        for w in range(2):
            metrics.set_ring_occupancy(w, 100 * (w + 1), 65536)


class _Store:
    def __init__(self, k: int) -> None:
        self.available = True
        self.rows_written = 900 * k
        self.rows_duplicate = 10 * k
        self.rows_expired = 0
        self.rows_rejected = k // 5
        self.rows_dropped = 0
        self.rows_buffered = 120
        self.rows_spilled = 0
        self.outages = k // 10


class _Cache:
    def __init__(self, k: int) -> None:
        self.available = True
        self.keys_written = 950 * k
        self.keys_skipped_older = k
        self.keys_unencodable = 0
        self.pending_symbols = 3
        self.outages = k // 10


def record_representative(k: int) -> None:
    """One round of everything the engine records (what a cycle of the real engine does)."""
    for i in range(20):
        err = "RateLimitedError" if i == 0 and k % 2 else None
        metrics.record_batch(50, 0.05 + 0.01 * (i % 7) + (0.4 if err else 0.0), err)
    metrics.record_retry("UpstreamStatusError")
    metrics.record_throttle()
    metrics.record_rate_limit_wait(0.02)
    metrics.record_cycle(summary(k, failed=50 if k % 3 == 0 else 0))
    metrics.record_overrun(1 if k % 5 == 0 else 0)
    metrics.record_ring_full(0)
    metrics.record_publish_retries(2)
    metrics.set_dlq_depth(30 * k)
    metrics.set_outbox_depth(k % 4, 1024 * (k % 4))
    metrics.record_store_stats(_Store(k))
    metrics.record_store_flush(0.01 + 0.002 * (k % 5))
    metrics.record_cache_stats(_Cache(k))
    metrics.record_earnings_sync(ok=True, fetched=400, changed=25, seconds=3.5)
    if k == 1:
        metrics.record_child_restart("worker")
        metrics.record_earnings_sync(ok=False, fetched=0, changed=0, seconds=0.4)


async def always_ok(timeout_s: float) -> None:
    return None


class ServedEngine:
    """``HttpServer`` on its own event loop in a thread, fed by a :class:`FakeSource` and a
    recorder running every ``interval_s`` (for Prometheus and Chromium, which need a server
    that answers while the test blocks)."""

    def __init__(
        self,
        source: FakeSource,
        *,
        checks: dict[str, Check | None] | None = None,
        feed_interval_s: float | None = 0.2,
        port: int = 0,
    ) -> None:
        self.source = source
        self.checks: dict[str, Check | None] = checks or {
            "nats": always_ok,
            "postgres": always_ok,
            "redis": always_ok,
        }
        self.feed_interval_s = feed_interval_s
        self.port = port
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> ServedEngine:
        self._thread = threading.Thread(target=self._run, name="served-engine", daemon=True)
        self._thread.start()
        if not self._started.wait(15):
            raise TimeoutError("the HTTP server did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by __enter__
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        config = Config(http=HttpSettings(host="127.0.0.1", port=self.port))
        metrics.set_build_info(__version__)
        async with HttpServer.serve(
            config, self.source, checks=self.checks, probe_interval_s=1.0
        ) as server:
            self.url = server.url
            self._started.set()
            k = 0
            while not self._stop.is_set():
                if self.feed_interval_s is None:
                    await self._stop.wait()
                    break
                k += 1
                record_representative(k)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.feed_interval_s)


@contextlib.contextmanager
def multiprocess_metrics(directory: Path) -> Iterator[Path]:
    d = metrics.setup_multiprocess(directory)
    try:
        yield d
    finally:
        metrics.teardown_multiprocess()


def require_binary(*names: str, package: str) -> str:
    """The first of ``names`` on PATH; skips the test without it, except in CI (``CI`` set),
    where a missing tool is a failure: CI must install ``package``."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    msg = f"{names[0]} not found: apt-get install -y {package}"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@contextlib.contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` running with its output in ``log``; terminated (then killed) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
