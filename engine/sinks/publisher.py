"""Publisher process: drains every worker's ring into NATS JetStream, PostgreSQL and Redis.

The jobs live in their own modules: :mod:`engine.sinks.jetstream` (the JetStream client),
:mod:`engine.sinks.delivery` (JetStream or the durable outbox, replay, dead letters) and
:mod:`engine.sinks.committer` (releasing ring records once durable, reporting cycles). This
module is the process: one drain task per ring, the committer, the outbox replayer, the NATS
connector and the dead-letter depth watch, all under one
:class:`~engine.runtime.tasks.TaskSupervisor` - a task that fails takes the process down (and
the supervisor restarts it) instead of dying silently.

The same chunk's quotes go to PostgreSQL (:class:`~engine.sinks.store.QuoteStore`, COPY in the
background) and Redis (:class:`~engine.sinks.cache.QuoteCache`); neither can hold up publishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from functools import partial
from multiprocessing.connection import Connection
from typing import Final

from engine.config import Config
from engine.deps.nats import ERRORS as NATS_ERRORS
from engine.errors import ConfigError, PublishError, StoreError
from engine.observe import logs, metrics
from engine.records import to_messages
from engine.ringbuf import Ring
from engine.runtime import ipc
from engine.runtime.child import ConnReader, child_init, run_loop
from engine.runtime.tasks import TaskSupervisor
from engine.sinks.cache import QuoteCache
from engine.sinks.committer import Committer, CycleLedger
from engine.sinks.delivery import Delivery
from engine.sinks.dlq_dedupe import DlqDedupe
from engine.sinks.jetstream import JetStreamPublisher
from engine.sinks.outbox import Outbox
from engine.sinks.reconcile import reconcile, stream_tail
from engine.sinks.store import QuoteStore

log = logging.getLogger(__name__)

CHUNK: Final = 2048  # records read from a ring per publish round
DLQ_POLL_S: Final = 15.0  # how often the dead-letter stream's depth is read
STOP_WAIT_DEFAULT_S: Final = 10.0  # grace when the supervisor's pipe closes without a Stop


class Publisher:
    """The publisher process: one drain task per ring, an outbox replayer, a committer.

    NATS is connected in the background: until it answers (and whenever it stops answering),
    drained messages go to the durable :class:`~engine.sinks.outbox.Outbox` so the rings keep
    moving; the replayer sends them, oldest first, as soon as JetStream acknowledges again.
    """

    def __init__(
        self, config: Config, rings: Sequence[Ring], notify_fds: Sequence[int], conn: Connection
    ) -> None:
        self.config = config
        self.rings = list(rings)
        self.notify_fds = list(notify_fds)
        self.conn = conn
        self.stopping = False
        self.events = [asyncio.Event() for _ in self.rings]
        self.store: QuoteStore | None = None
        self.cache: QuoteCache | None = None
        self.delivery = Delivery(
            config.nats, Outbox(config.nats.outbox_dir, config.nats.outbox_max_bytes)
        )
        self.ledger = CycleLedger(self.rings, partial(ipc.send, conn))
        self.dlq_dedupe = DlqDedupe(config.validation.dlq_dedupe_s)
        self.committer: Committer | None = None
        self._drains: list[asyncio.Task[None]] = []
        self.reconciling: asyncio.Event | None = None  # set once the reconcile is over
        self.started = time.perf_counter()

    @property
    def jsp(self) -> JetStreamPublisher | None:
        return self.delivery.jsp

    def _wake(self, i: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.notify_fds[i], 4096)
        self.events[i].set()

    def _fatal(self, message: str) -> None:
        """A configuration problem: the supervisor is told, and does not restart us."""
        log.error("publisher_fatal", extra={"error": message})
        ipc.send(self.conn, ipc.Fatal(message=message))

    # -- the tasks ---------------------------------------------------------------------------

    async def _connect(self) -> None:
        """Connect (retrying until NATS answers), set the streams up, reconcile the stream's
        tail into PostgreSQL (:mod:`engine.sinks.reconcile`), then hold the connection for the
        delivery until this task is cancelled at stop (which waits for a reconcile in progress
        up to the grace period; one cut short is read again by the next start)."""
        s = self.config.nats
        try:
            async with JetStreamPublisher.connect(s) as jsp:
                lookback_s = self.config.postgres.reconcile_lookback_s
                store = self.store if lookback_s > 0 else None
                # the tail is read before this process publishes: the reconcile's window
                tail = await stream_tail(jsp.js, s.stream) if store is not None else None
                self.delivery.connected(jsp)
                outbox = self.delivery.outbox
                log.info(
                    "nats_ready",
                    extra={"url": s.url.redacted(), "outbox_segments": len(outbox),
                           "since_start_s": round(time.perf_counter() - self.started, 3)},
                )  # fmt: skip
                if store is not None and tail is not None:  # while the drains publish
                    self.reconciling = asyncio.Event()
                    try:
                        await reconcile(jsp.js, store, s, tail=tail, lookback_s=lookback_s)
                    finally:
                        self.reconciling.set()
                await asyncio.Event().wait()
        except (PublishError, ConfigError) as exc:  # streams cannot be set up (no JetStream...)
            self._fatal(str(exc))

    async def _watch_dlq(self, every_s: float = DLQ_POLL_S) -> None:
        """Report the dead-letter stream's depth (stream info) every ``every_s``."""
        while True:
            jsp = self.jsp
            if jsp is not None:
                try:
                    info = await jsp.js.stream_info(self.config.nats.dlq_stream)
                    metrics.set_dlq_depth(int(info.state.messages))
                except NATS_ERRORS as exc:
                    log.debug("dlq_depth_unavailable", extra={"error_kind": type(exc).__name__})
            # until JetStream is connected, look again soon: the first depth comes with it
            await asyncio.sleep(every_s if jsp is not None else min(every_s, 0.5))

    async def _drain(self, i: int, committer: Committer) -> None:
        ring = self.rings[i]
        pos = ring.tail
        while True:
            recs = ring.read(pos, CHUNK)
            if len(recs) == 0:
                if self.stopping:
                    return
                await self.events[i].wait()
                self.events[i].clear()
                continue
            d = to_messages(recs)  # a record it cannot build is quarantined (dead-lettered)
            if d.quarantined:
                metrics.record_quarantined("publish", d.quarantined)
                log.warning("records_quarantined", extra={"stage": "publish", "ring": i,
                                                          "records": d.quarantined})  # fmt: skip
            msgs = self.dlq_dedupe.filter(d.messages)
            outcome = await self.delivery.send(msgs)
            self.ledger.account(msgs, outcome)
            if self.store is not None:
                self.store.submit(d.quotes)
            if self.cache is not None:
                self.cache.submit([*d.quotes, *d.unchanged])
            pos += len(recs)
            committer.taken(i, pos)

    def _drained(self) -> bool:
        return self.stopping and all(d.done() for d in self._drains)

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        logs.bind(role="publisher")
        loop = asyncio.get_running_loop()
        reader = ConnReader(self.conn, child=True)
        for i, fd in enumerate(self.notify_fds):
            loop.add_reader(fd, self._wake, i)
        t0 = self.started = time.perf_counter()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.config.postgres.enabled:
                    self.store = await stack.enter_async_context(
                        QuoteStore.connect(self.config.postgres)
                    )
                if self.config.redis.enabled:
                    self.cache = await stack.enter_async_context(
                        QuoteCache.connect(self.config.redis)
                    )
                async with TaskSupervisor("publisher") as tasks:
                    await self._serve(reader, tasks, connect_s=time.perf_counter() - t0)
        except StoreError as exc:  # cannot be set up: a configuration problem
            self._fatal(str(exc))
        finally:
            if self.jsp is not None:
                await self.jsp.aclose()

    async def _serve(self, reader: ConnReader, tasks: TaskSupervisor, *, connect_s: float) -> None:
        outbox = self.delivery.outbox
        background = [
            tasks.spawn("connector", self._connect()),
            tasks.spawn("replayer", self.delivery.replay()),
            tasks.spawn("dlq-watch", self._watch_dlq()),
        ]
        if len(outbox):
            log.warning("outbox_found", extra={"segments": len(outbox)})
        # reported from the start, 0 included: an empty series is not a healthy one
        self.delivery.outbox_depth(outbox.count_messages())
        ipc.send(self.conn, ipc.PublisherReady(pid=os.getpid(), connect_s=connect_s))
        committer = Committer(
            self.rings,
            self.ledger,
            store=self.store,
            cache=self.cache,
            flush_timeout_s=self.config.postgres.flush_timeout_s,
        )
        self.committer = committer
        self._drains = [
            tasks.spawn(f"drain-{i}", self._drain(i, committer)) for i in range(len(self.rings))
        ]
        committing = tasks.spawn("committer", committer.run(self._drained))
        while True:
            msg = await reader.get()
            if isinstance(msg, ipc.Seal):
                self.ledger.seal(msg.cycle, msg.positions)
            elif msg is None or isinstance(msg, ipc.Stop):
                grace = msg.grace_s if isinstance(msg, ipc.Stop) else STOP_WAIT_DEFAULT_S
                await self._stop(grace, committing, background)
                return

    async def _stop(
        self,
        grace: float,
        committing: asyncio.Task[None],
        background: Sequence[asyncio.Task[None]],
    ) -> None:
        """Drain every ring (into JetStream or the outbox), then give the outbox up to the grace
        period to empty; what is left stays on disk for the next start."""
        deadline = time.monotonic() + grace
        self.stopping = True
        for e in self.events:
            e.set()
        await asyncio.gather(*self._drains)
        if self.committer is not None:
            self.committer.wake.set()
        await committing
        outbox = self.delivery.outbox
        while len(outbox) and self.jsp is not None and time.monotonic() < deadline:
            self.delivery.wake.set()
            await asyncio.sleep(0.05)
        if self.reconciling is not None:  # a short run must not cut its reconcile short
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.reconciling.wait(), deadline - time.monotonic())
        for task in background:
            task.cancel()
        await asyncio.wait(background)
        if self.cache is not None:
            await self.cache.drain(min(grace, 5.0))
        log.info(
            "publisher_stopped",
            extra={
                "left_in_rings": sum(r.occupancy() for r in self.rings),
                "outbox_segments": len(outbox),
                "lost": self.delivery.lost,
            },
        )


def publisher_main(
    config: Config,
    rings: Sequence[Ring],
    notify_fds: Sequence[int],
    conn: Connection,
    parent_pid: int,
) -> None:
    """Entry point of the forked publisher process."""
    child_init(parent_pid, config, "ingest-publish")
    for ring in rings:
        ring.populate()
    run_loop(Publisher(config, rings, notify_fds, conn).run())
