"""Worker process: a uvloop fetch loop over the shards it owns, writing into its own ring.

A worker owns a set of fixed symbol shards (the unit of ownership; the supervisor assigns them,
and a later multi-host version leases the same shards through NATS KV). On each ``StartCycle``
it asks its quote *source* (:mod:`engine.source.poll`) for every symbol of its shards; the
source hands what it got to the *sink* (:class:`engine.runtime.ring_sink.RingSink`), which
validates each quote, drops quotes identical to the last one written for that symbol, and
appends the rest (plus rejections, bound for the dead-letter queue) to the ring.

A fetch phase is bounded (``scheduler.fetch_timeout_s``; by default twice the interval): a
stalling Yahoo cannot hold a cycle - and so every later one - open. What it did not fetch by
then counts as failed (``FetchTimeout``) and goes first next cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Final

from engine.config import Config
from engine.errors import ConfigError, RingError, UpstreamError
from engine.observe import logs, metrics
from engine.ringbuf import LastSeenTable, Ring
from engine.runtime import ipc
from engine.runtime.child import ConnReader, child_init, run_loop
from engine.runtime.ring_sink import RingSink
from engine.runtime.tasks import TaskSupervisor
from engine.source.client import YahooClient
from engine.source.guard import Guard
from engine.source.poll import Poll, YahooPollSource, in_flight_share
from engine.stats import FetchCounts

log = logging.getLogger(__name__)


FETCH_TIMEOUT: Final = "FetchTimeout"
"""Error kind of the symbols a cycle's fetch phase did not reach within its bound."""


def cut_short(
    source: YahooPollSource, symbols: Sequence[str], started: float, counts: FetchCounts
) -> int:
    """The fetch phase begun at ``started`` (the source's clock) ran out of time: every symbol
    it did not fetch counts as failed (those already counted are not counted twice) and goes
    first next cycle. Returns how many the timeout failed."""
    last = source.last_fetched
    unfetched = [s for s in symbols if last.get(s, -math.inf) < started]
    timed_out = len(unfetched) - counts.failed  # those a failed batch counted are among them
    if timed_out > 0:
        counts.failed += timed_out
        counts.error(FETCH_TIMEOUT)
    source.failed.update(unfetched)
    return max(0, timed_out)


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
        self.sink = RingSink(
            ring,
            notify_fd,
            config.validation,
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
            try:
                table = LastSeenTable.attach(msg.state_name, msg.state_size)
            except RingError:  # already replaced by a newer reload, whose Assign follows
                log.info("shards_assignment_superseded", extra={"generation": msg.generation})
                return
            if self.sink.last_seen is not None:
                self.sink.last_seen.close()
            self.sink.last_seen = table
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

    async def _cycle(self, source: YahooPollSource, msg: ipc.StartCycle) -> None:
        t0 = time.perf_counter()
        counts = FetchCounts()
        logs.bind(cycle=msg.cycle)
        bound = self.config.scheduler.fetch_bound_s()
        started = time.monotonic()
        try:
            poll = source.poll(self.symbols, Poll(self.sink, msg.cycle, counts, msg.spread_s))
            await asyncio.wait_for(poll, timeout=bound)
        except TimeoutError:
            timed_out = cut_short(source, self.symbols, started, counts)
            if timed_out:  # the requests it cancelled, as one failed request of its own kind
                metrics.record_batch(timed_out, bound, FETCH_TIMEOUT)
            log.warning(
                "fetch_timed_out",
                extra={"cycle": msg.cycle, "timeout_s": bound, "failed": counts.failed},
            )
        finally:
            done = ipc.CycleFetched(
                worker=self.id,
                cycle=msg.cycle,
                counts=counts,
                ring_head=self.sink.ring.head,
                seconds=time.perf_counter() - t0,
            )
            ipc.send(self.conn, done)

    async def run(self) -> None:
        logs.bind(role="worker", worker=self.id)
        reader = ConnReader(self.conn, child=True)
        y = self.config.yahoo
        share = in_flight_share(y.max_in_flight, self.config.worker_count(), self.id)
        t0 = time.perf_counter()
        async with contextlib.AsyncExitStack() as stack:
            try:
                client = await stack.enter_async_context(
                    YahooClient.connect(y, max_clients=share, guard=self.guard)
                )
            except ConfigError as exc:  # e.g. a browser curl_cffi cannot impersonate
                log.error("worker_fatal", extra={"error": str(exc)})
                ipc.send(self.conn, ipc.Fatal(message=str(exc)))
                return
            source = YahooPollSource(client, batch_size=y.batch_size, in_flight=share)
            try:
                await asyncio.wait_for(client.crumb(), timeout=y.timeout_s)
            except (UpstreamError, TimeoutError) as exc:
                log.warning("crumb_prefetch_failed", extra={"error_kind": type(exc).__name__})
            ready = ipc.WorkerReady(self.id, os.getpid(), crumb_s=time.perf_counter() - t0)
            ipc.send(self.conn, ready)
            async with TaskSupervisor(f"worker-{self.id}") as tasks:
                await self._serve(reader, source, tasks)

    async def _serve(
        self, reader: ConnReader, source: YahooPollSource, tasks: TaskSupervisor
    ) -> None:
        """Act on control messages until ``Stop`` (or the supervisor is gone)."""
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
                current = tasks.spawn("cycle", self._cycle(source, msg))


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
    ring.populate()
    run_loop(Worker(worker_id, config, ring, notify_fd, conn, guard).run())
