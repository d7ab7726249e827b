"""Worker process: a uvloop fetch loop over the shards it owns, writing into its own ring.

A worker owns a set of fixed symbol shards (the unit of ownership; the supervisor assigns them,
and a later multi-host version leases the same shards through NATS KV). On each ``StartCycle``
it asks its quote *source* for every symbol of its shards; the source hands what it got to the
*sink*, which validates each quote, drops quotes identical to the last one written for that
symbol, and appends the rest (plus rejections, bound for the dead-letter queue) to the ring.

The seam for a second source: :class:`QuoteSource` is anything that can feed a :class:`RingSink`.
The v7 poller (:class:`YahooPollSource`) is driven by the cycle; a streaming source (Yahoo's
websocket) would run beside it, calling ``sink.accept`` with its own source code whenever a price
arrives - the ring, the validation, the dedup and the publisher are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Protocol

import msgspec

from engine.config import Config
from engine.errors import CircuitOpenError, RateLimitedError, UpstreamError
from engine.observe import logs, metrics
from engine.quote import Rejection, RejectReason, Rules, YahooQuote, validate
from engine.records import to_records
from engine.ringbuf import LastSeenTable, Ring
from engine.runtime import ipc
from engine.runtime.child import ConnReader, child_init, run_loop
from engine.source.client import YahooClient
from engine.source.decode import MalformedQuote
from engine.source.guard import Guard

log = logging.getLogger(__name__)


class CycleStats(msgspec.Struct):
    requested: int = 0
    fetched: int = 0
    valid: int = 0
    unchanged: int = 0
    stale: int = 0
    regular: int = 0  # valid quotes in marketState REGULAR
    missing: int = 0
    failed: int = 0
    requests: int = 0
    failed_requests: int = 0  # batch requests that failed after their retries (then split)
    attempts: int = 0
    rejected: Counter[str] = msgspec.field(default_factory=Counter)
    errors: Counter[str] = msgspec.field(default_factory=Counter)


class RingSink:
    """Validate, de-duplicate and append quotes to this worker's ring."""

    def __init__(
        self,
        ring: Ring,
        notify_fd: int,
        rules: Rules,
        *,
        skip_unchanged: bool,
        worker: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ring = ring
        self.worker = worker
        self._notify_fd = notify_fd
        self._rules = rules
        self._skip_unchanged = skip_unchanged
        self._clock = clock
        self.last_seen: LastSeenTable | None = None
        self.index_of: dict[str, int] = {}
        self.full_waits = 0

    def _on_full(self) -> None:
        self.full_waits += 1
        metrics.record_ring_full(self.worker)

    def notify(self) -> None:
        # a full pipe already holds wake-ups: the publisher will look anyway
        with contextlib.suppress(BlockingIOError):
            os.write(self._notify_fd, b"\x01")

    async def accept(
        self,
        source: int,
        cycle: int,
        quotes: Sequence[YahooQuote],
        malformed: Sequence[MalformedQuote],
        stats: CycleStats,
    ) -> None:
        now = self._clock()
        table = self.last_seen
        times = table.times if table is not None else None
        ok_cycle = table.ok_cycle if table is not None else None
        valid = []
        unchanged = []
        written: list[tuple[int, int]] = []
        rejections: list[Rejection] = []
        for yq in quotes:
            q = validate(yq, now_s=now, rules=self._rules)
            if isinstance(q, Rejection):
                rejections.append(q)
                continue
            stats.regular += q.market_state == "REGULAR"
            idx = self.index_of.get(q.symbol)
            if idx is not None and times is not None:
                assert ok_cycle is not None
                ok_cycle[idx] = cycle
                if self._skip_unchanged and times[idx] == q.market_time:
                    unchanged.append(q)
                    continue
                written.append((idx, q.market_time))
            valid.append(q)
            stats.stale += q.stale
        rejections.extend(Rejection(m.symbol, RejectReason.MALFORMED, m.detail) for m in malformed)
        for r in rejections:
            stats.rejected[r.reason.label] += 1
            # one line per rejection at DEBUG; the cycle summary counts them by reason and
            # every one is in the dead-letter stream with its detail
            log.debug(
                "quote_rejected",
                extra={"symbol": r.symbol, "reason": r.reason.label, "detail": r.detail},
            )
        stats.valid += len(valid) + len(unchanged)
        stats.unchanged += len(unchanged)
        recs = to_records(
            valid,
            rejections,
            cycle=cycle,
            source=source,
            ingest_time_ns=time.time_ns(),
            unchanged=unchanged,
        )
        if not len(recs):
            return
        await self.ring.write(recs, on_full=self._on_full)
        if times is not None:
            for idx, t in written:
                times[idx] = t
        self.notify()


class QuoteSource(Protocol):
    """Something that fetches quotes for symbols and hands them to a sink."""

    code: int  # index into engine.records.SOURCES

    async def poll(
        self,
        symbols: Sequence[str],
        sink: RingSink,
        cycle: int,
        spread_s: float,
        stats: CycleStats,
    ) -> None: ...


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

    async def _fetch(
        self,
        batch: Sequence[str],
        sink: RingSink,
        cycle: int,
        stats: CycleStats,
        deferred: list[Sequence[str]] | None = None,
    ) -> None:
        error: UpstreamError | None = None
        async with self._sem:
            stats.requests += 1
            t0 = time.perf_counter()
            try:
                qb = await self.client.fetch_quotes(batch)
            except UpstreamError as exc:
                error = exc
                stats.failed_requests += 1
            metrics.record_batch(
                len(batch), time.perf_counter() - t0, None if error is None else error.kind
            )
        if error is None:
            now = self._clock()
            for sym in batch:
                self.failed.discard(sym)
                self.last_fetched[sym] = now
            stats.attempts += qb.attempts
            stats.fetched += len(qb.quotes) + len(qb.malformed)
            stats.missing += len(qb.missing)
            await sink.accept(self.code, cycle, qb.quotes, qb.malformed, stats)
        elif deferred is not None and isinstance(error, RateLimitedError):
            # a 429 is not the batch's fault: one more try at the end of this cycle, once the
            # shared limiter has slowed down, rather than 50 symbols without a quote this cycle
            log.info("batch_deferred", extra={"cycle": cycle, "symbols": len(batch)})
            deferred.append(batch)
        elif len(batch) > 1 and not isinstance(error, self.NO_SPLIT):
            log.warning(
                "batch_split", extra={"cycle": cycle, "symbols": len(batch), "error": error.kind}
            )
            half = len(batch) // 2
            await asyncio.gather(
                self._fetch(batch[:half], sink, cycle, stats, deferred),
                self._fetch(batch[half:], sink, cycle, stats, deferred),
            )
        else:
            self._failed(batch, cycle, stats, error)

    def _failed(
        self, batch: Sequence[str], cycle: int, stats: CycleStats, exc: UpstreamError
    ) -> None:
        stats.failed += len(batch)
        stats.errors[exc.kind] += 1
        self.failed.update(batch)
        log.warning(
            "batch_failed",
            extra={
                "cycle": cycle,
                "symbols": len(batch),
                "first_symbol": batch[0],
                "error": exc.kind,
                "detail": str(exc)[:200],
            },
        )

    async def _one(
        self,
        batch: Sequence[str],
        sink: RingSink,
        cycle: int,
        start_at: float,
        stats: CycleStats,
        deferred: list[Sequence[str]],
    ) -> None:
        delay = start_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await self._fetch(batch, sink, cycle, stats, deferred)

    async def poll(
        self,
        symbols: Sequence[str],
        sink: RingSink,
        cycle: int,
        spread_s: float,
        stats: CycleStats,
    ) -> None:
        ordered = self.order(symbols)
        size = self.batch_size
        batches = [ordered[i : i + size] for i in range(0, len(ordered), size)]
        stats.requested += len(symbols)
        step = spread_s / len(batches) if batches and spread_s > 0 else 0.0
        t0 = time.monotonic()
        deferred: list[Sequence[str]] = []
        async with asyncio.TaskGroup() as tg:
            for i, b in enumerate(batches):
                tg.create_task(self._one(b, sink, cycle, t0 + i * step, stats, deferred))
        if not deferred:
            return
        if len(deferred) > max(1, len(batches) // 10):  # a 429 storm: leave it to the next cycle
            storm = RateLimitedError("429 storm: batch left for the next cycle")
            for d in deferred:
                self._failed(d, cycle, stats, storm)
            return
        async with asyncio.TaskGroup() as tg:  # the last chance in this cycle
            for d in deferred:
                tg.create_task(self._fetch(d, sink, cycle, stats))


def in_flight_share(total: int, workers: int, worker: int) -> int:
    """This worker's share of the engine-wide request concurrency (at least 1)."""
    base, extra = divmod(total, workers)
    return max(1, base + (1 if worker < extra else 0))


class Worker:
    def __init__(
        self,
        worker_id: int,
        config: Config,
        ring: Ring,
        notify_fd: int,
        conn: Connection,
        guard: Guard | None = None,
    ) -> None:
        self.id = worker_id
        self.guard = guard
        self.config = config
        self.conn = conn
        v = config.validation
        self.sink = RingSink(
            ring,
            notify_fd,
            Rules(v.min_price, v.max_price, v.max_age_regular_s, v.max_future_skew_s),
            skip_unchanged=config.workers.skip_unchanged,
            worker=worker_id,
        )
        self.symbols: list[str] = []
        self._state_name = ""

    def _assign(self, msg: ipc.Assign) -> None:
        symbols: list[str] = []
        index_of: dict[str, int] = {}
        for sh in msg.shards:
            symbols.extend(sh.symbols)
            index_of.update(zip(sh.symbols, sh.indices, strict=True))
        if msg.state_name != self._state_name:
            if self.sink.last_seen is not None:
                self.sink.last_seen.close()
            self.sink.last_seen = LastSeenTable.attach(msg.state_name, msg.state_size)
            self._state_name = msg.state_name
        self.symbols = symbols
        self.sink.index_of = index_of
        log.info(
            "shards_assigned",
            extra={
                "generation": msg.generation,
                "shards": len(msg.shards),
                "symbols": len(symbols),
            },
        )

    async def _cycle(self, source: QuoteSource, msg: ipc.StartCycle) -> None:
        t0 = time.perf_counter()
        stats = CycleStats()
        logs.bind(cycle=msg.cycle)
        try:
            await source.poll(self.symbols, self.sink, msg.cycle, msg.spread_s, stats)
        finally:
            ipc.send(
                self.conn,
                ipc.CycleFetched(
                    worker=self.id,
                    cycle=msg.cycle,
                    requested=stats.requested,
                    fetched=stats.fetched,
                    valid=stats.valid,
                    unchanged=stats.unchanged,
                    stale=stats.stale,
                    regular=stats.regular,
                    missing=stats.missing,
                    failed=stats.failed,
                    rejected=dict(stats.rejected),
                    errors=dict(stats.errors),
                    requests=stats.requests,
                    failed_requests=stats.failed_requests,
                    attempts=stats.attempts,
                    ring_head=self.sink.ring.head,
                    seconds=time.perf_counter() - t0,
                ),
            )

    async def run(self) -> None:
        logs.bind(role="worker", worker=self.id)
        reader = ConnReader(self.conn, child=True)
        y = self.config.yahoo
        share = in_flight_share(y.max_in_flight, self.config.worker_count(), self.id)
        async with YahooClient.connect(y, max_clients=share, guard=self.guard) as client:
            source = YahooPollSource(client, batch_size=y.batch_size, in_flight=share)
            try:
                await asyncio.wait_for(client.crumb(), timeout=y.timeout_s)
            except (UpstreamError, TimeoutError) as exc:
                log.warning("crumb_prefetch_failed", extra={"error": type(exc).__name__})
            ipc.send(self.conn, ipc.WorkerReady(worker=self.id, pid=os.getpid()))
            current: asyncio.Task[None] | None = None
            while True:
                msg = await reader.get()
                if msg is None or isinstance(msg, ipc.Stop):
                    grace = msg.grace_s if isinstance(msg, ipc.Stop) else 5.0
                    if current is not None and not current.done():
                        try:
                            await asyncio.wait_for(asyncio.shield(current), timeout=grace)
                        except TimeoutError:
                            current.cancel()
                            log.warning("cycle_cancelled_at_shutdown", extra={"grace_s": grace})
                    return
                if isinstance(msg, ipc.Assign):
                    self._assign(msg)
                elif isinstance(msg, ipc.StartCycle):
                    if current is not None and not current.done():
                        log.error("cycle_overlap_refused", extra={"cycle": msg.cycle})
                        continue
                    current = asyncio.create_task(self._cycle(source, msg))


def worker_main(
    worker_id: int,
    config: Config,
    ring: Ring,
    notify_fd: int,
    conn: Connection,
    parent_pid: int,
    guard: Guard | None,
) -> None:
    """Entry point of a forked worker process."""
    child_init(parent_pid, config, f"ingest-worker-{worker_id}")
    run_loop(Worker(worker_id, config, ring, notify_fd, conn, guard).run())
