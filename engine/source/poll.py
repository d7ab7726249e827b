"""Polling Yahoo's quote endpoint once per cycle: batching, fairness, split and deferral.

The seam for a second source: :class:`QuoteSource` is anything that can feed a
:class:`QuoteSink` (the worker's ring sink). The v7 poller (:class:`YahooPollSource`) is driven
by the cycle; a streaming source (Yahoo's websocket) would run beside it, calling ``sink.accept``
with its own source code whenever a price arrives - the ring, the validation, the dedup and the
publisher are shared.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.errors import CircuitOpenError, RateLimitedError, UpstreamError
from engine.observe import metrics
from engine.source.client import YahooClient
from engine.source.decode import QuoteBatch
from engine.stats import FetchCounts

log = logging.getLogger(__name__)


class QuoteSink(Protocol):
    """Where a source hands what it got (validated, de-duplicated and written to a ring)."""

    async def accept(self, source: int, cycle: int, got: QuoteBatch, counts: FetchCounts) -> None:
        """Take the quotes (and malformed entries) of ``got``, counting into ``counts``."""
        ...


@dataclass(slots=True)
class Poll:
    """One cycle's poll: where the quotes go and what it counts into."""

    sink: QuoteSink
    cycle: int
    counts: FetchCounts
    spread_s: float = 0.0
    """Seconds over which the batches are spread (0: all at once)."""


class QuoteSource(Protocol):
    """Something that fetches quotes for symbols and hands them to a sink."""

    code: int  # index into engine.records.SOURCES

    async def poll(self, symbols: Sequence[str], run: Poll) -> None: ...


def in_flight_share(total: int, workers: int, worker: int) -> int:
    """This worker's share of the engine-wide request concurrency (at least 1)."""
    base, extra = divmod(total, workers)
    return max(1, base + (1 if worker < extra else 0))


class YahooPollSource:
    """Batched ``/v7/finance/quote`` polling with a bounded number of requests in flight.

    Fairness: symbols whose last batch failed go first in the next cycle, then the rest by how
    long ago they were last fetched (oldest first), so when Yahoo's budget cannot cover a whole
    cycle the same tail is not starved every time. A batch that still fails after its retries is
    split in halves (recursively) to isolate a symbol that poisons it; rate limiting and an open
    breaker are not a batch's fault and are not split.
    """

    code = 0
    NO_SPLIT: tuple[type[UpstreamError], ...] = (RateLimitedError, CircuitOpenError)

    def __init__(
        self,
        client: YahooClient,
        *,
        batch_size: int,
        in_flight: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.batch_size = batch_size
        self._sem = asyncio.Semaphore(max(1, in_flight))
        self._clock = clock
        self.failed: set[str] = set()
        self.last_fetched: dict[str, float] = {}

    def order(self, symbols: Sequence[str]) -> list[str]:
        """Failed first, then least recently fetched first (stable for equal times)."""
        last = self.last_fetched
        failed = self.failed
        return sorted(symbols, key=lambda s: (s not in failed, last.get(s, 0.0)))

    async def _request(self, batch: Sequence[str], counts: FetchCounts) -> QuoteBatch:
        async with self._sem:
            counts.requests += 1
            t0 = time.perf_counter()
            try:
                got = await self.client.fetch_quotes(batch)
            except UpstreamError as exc:
                counts.failed_requests += 1
                metrics.record_batch(len(batch), time.perf_counter() - t0, exc.kind)
                raise
            metrics.record_batch(len(batch), time.perf_counter() - t0, None)
            return got

    async def _fetch(
        self, batch: Sequence[str], run: Poll, deferred: list[Sequence[str]] | None = None
    ) -> None:
        counts = run.counts
        try:
            got = await self._request(batch, counts)
        except UpstreamError as exc:
            await self._on_error(batch, run, exc, deferred)
            return
        # let a request waiting for the slot this answer freed go out before the answer is
        # validated and written: at 20-50 in flight the answers of a wave arrive together, and
        # processing them all first held the next wave back (the slot sat idle meanwhile)
        await asyncio.sleep(0)
        now = self._clock()
        for sym in batch:
            self.failed.discard(sym)
            self.last_fetched[sym] = now
        counts.attempts += got.attempts
        counts.fetched += len(got.quotes) + len(got.malformed)
        counts.missing += len(got.missing)
        await run.sink.accept(self.code, run.cycle, got, counts)

    async def _on_error(
        self,
        batch: Sequence[str],
        run: Poll,
        error: UpstreamError,
        deferred: list[Sequence[str]] | None,
    ) -> None:
        if deferred is not None and isinstance(error, RateLimitedError):
            # a 429 is not the batch's fault: one more try at the end of this cycle, once the
            # shared limiter has slowed down, rather than 50 symbols without a quote this cycle
            log.info("batch_deferred", extra={"cycle": run.cycle, "symbols": len(batch)})
            deferred.append(batch)
        elif len(batch) > 1 and not isinstance(error, self.NO_SPLIT):
            log.warning(
                "batch_split",
                extra={"cycle": run.cycle, "symbols": len(batch), "error_kind": error.kind},
            )
            half = len(batch) // 2
            await asyncio.gather(
                self._fetch(batch[:half], run, deferred),
                self._fetch(batch[half:], run, deferred),
            )
        else:
            self._failed(batch, run, error)

    def _failed(self, batch: Sequence[str], run: Poll, exc: UpstreamError) -> None:
        run.counts.failed += len(batch)
        run.counts.error(exc.kind)
        self.failed.update(batch)
        log.warning(
            "batch_failed",
            extra={
                "cycle": run.cycle,
                "symbols": len(batch),
                "first_symbol": batch[0],
                "error_kind": exc.kind,
                "error": str(exc)[:200],
            },
        )

    async def _one(
        self, batch: Sequence[str], run: Poll, start_at: float, deferred: list[Sequence[str]]
    ) -> None:
        delay = start_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await self._fetch(batch, run, deferred)

    async def poll(self, symbols: Sequence[str], run: Poll) -> None:
        ordered = self.order(symbols)
        size = self.batch_size
        batches = [ordered[i : i + size] for i in range(0, len(ordered), size)]
        run.counts.requested += len(symbols)
        step = run.spread_s / len(batches) if batches and run.spread_s > 0 else 0.0
        t0 = time.monotonic()
        deferred: list[Sequence[str]] = []
        async with asyncio.TaskGroup() as tg:
            for i, b in enumerate(batches):
                tg.create_task(self._one(b, run, t0 + i * step, deferred))
        if not deferred:
            return
        if len(deferred) > max(1, len(batches) // 10):  # a 429 storm: leave it to the next cycle
            storm = RateLimitedError("429 storm: batch left for the next cycle")
            for d in deferred:
                self._failed(d, run, storm)
            return
        async with asyncio.TaskGroup() as tg:  # the last chance in this cycle
            for d in deferred:
                tg.create_task(self._fetch(d, run))
