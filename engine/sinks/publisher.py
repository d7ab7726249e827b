"""Publisher process: drains every worker's ring into NATS JetStream.

* :class:`JetStreamPublisher` owns the NATS connection (async context manager): on enter it
  connects (retrying, logging each attempt) and makes sure both streams exist - the quote stream
  on ``data.market.quote`` and the dead-letter stream on ``data.market.dlq`` - with file storage,
  a duplicate window and a max age; on exit it drains the connection.
* Publishing is pipelined: every message of a chunk goes out with ``publish_async`` (bounded
  number of un-acked messages), then every ack is checked. A message whose ack is an error or does
  not arrive in time is published again with the same ``Nats-Msg-Id`` - JetStream drops the copy
  if the first one did land, so retries never duplicate.
* The same chunk's quotes go to PostgreSQL (:class:`~engine.sinks.store.QuoteStore`, COPY in the
  background) and Redis (:class:`~engine.sinks.cache.QuoteCache`); neither can hold up publishing.
* A ring's ``tail`` moves only after every message of a chunk is acknowledged by JetStream *and*
  its rows are durable - committed to PostgreSQL, or spilled to a fsync'd file when PostgreSQL
  does not take them within ``postgres.flush_timeout_s`` (a committer task batches this, so a
  slow database delays the tail, never the publishing). If this process dies, its successor
  re-reads from the tail: at-least-once into JetStream and PostgreSQL, exactly-once in the stream
  (dedup by ``Nats-Msg-Id`` = ``{symbol}:{market time}``) and in the table (primary key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from typing import Any, Final

import msgspec
import nats
import nats.errors
import nats.js.errors

from engine.config import Config, NatsSettings
from engine.deps.nats import connect as connect_nats
from engine.deps.nats import ensure_stream
from engine.errors import PublishError, StoreError
from engine.observe import logs, metrics
from engine.records import OutMessage, encode_dlq, to_messages, unpublishable
from engine.retry import full_jitter
from engine.ringbuf import Ring
from engine.runtime import ipc
from engine.runtime.child import ConnReader, child_init, run_loop
from engine.sinks.cache import QuoteCache
from engine.sinks.outbox import Outbox
from engine.sinks.store import QuoteStore
from engine.stats import PublishCounts

log = logging.getLogger(__name__)

PUBLISHED: Final = 0
DUPLICATE: Final = 1
FAILED: Final = 2  # not acknowledged in time (NATS unreachable): goes to the outbox
REJECTED: Final = 3  # JetStream refused the message itself: goes to the DLQ as unpublishable
OUTBOXED: Final = 4
CHUNK: Final = 2048  # records read from a ring per publish round
DLQ_POLL_S: Final = 15.0  # how often the dead-letter stream's depth is read


class JetStreamPublisher:
    """JetStream connection with stream set-up and acknowledged, retried publishing."""

    def __init__(self, settings: NatsSettings, nc: Any) -> None:
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream(publish_async_max_pending=settings.max_pending_acks)
        self.retries = 0
        self.closing = asyncio.Event()
        self.rejections: dict[str, str] = {}  # msg id -> JetStream's error, until dead-lettered

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, settings: NatsSettings, *, attempts: int | None = None
    ) -> AsyncIterator[JetStreamPublisher]:
        closing = asyncio.Event()
        nc = await connect_nats(settings, attempts=attempts, closing=closing)
        pub = cls(settings, nc)
        pub.closing = closing
        try:
            await pub.ensure_streams()
            yield pub
        finally:
            await pub.aclose()

    async def aclose(self) -> None:
        if self.nc.is_closed:
            return
        self.closing.set()
        try:
            await asyncio.wait_for(self.nc.drain(), timeout=5)
        except (TimeoutError, nats.errors.Error):
            await self.nc.close()

    async def ensure_streams(self) -> None:
        s = self.settings
        for name, subject in ((s.stream, s.subject), (s.dlq_stream, s.dlq_subject)):
            await ensure_stream(self.js, name, subject, s)

    def subject_of(self, m: OutMessage) -> str:
        return subject_of(m, self.settings)

    async def _probe(
        self, msgs: Sequence[OutMessage], pending: list[int], outcome: list[int]
    ) -> list[int]:
        """Publish still-unacknowledged messages one by one, synchronously.

        nats-py's ``publish_async`` never resolves a future whose ack is a JetStream error (the
        error is raised inside its reply handler), so a message JetStream refuses looks exactly
        like a lost ack. While the connection is up, a synchronous publish tells them apart: it
        raises the API error. The first timeout ends the probe (an outage, not a refusal).
        """
        left = list(pending)
        timeout = min(self.settings.ack_timeout_s, 2.0)
        for i in pending:
            m = msgs[i]
            try:
                ack = await _probe_one(self.js, self.subject_of(m), m, timeout)
            except nats.js.errors.APIError as err:
                if not _permanent(err):
                    break
                outcome[i] = REJECTED
                self.rejections[m.msg_id] = _describe(err)
            except (nats.errors.Error, TimeoutError, OSError):
                break
            else:
                outcome[i] = DUPLICATE if ack.duplicate else PUBLISHED
            left.remove(i)
        return left

    async def publish(self, msgs: Sequence[OutMessage], *, deadline: float) -> list[int]:
        """Publish ``msgs``, re-publishing what is not acknowledged, until ``deadline``.

        Outcome per message: PUBLISHED, DUPLICATE (JetStream already had that Nats-Msg-Id),
        REJECTED (JetStream answered an error for that message: it will never be taken) or
        FAILED (no ack by the deadline: NATS unreachable - the caller outboxes it).
        """
        s = self.settings
        outcome = [FAILED] * len(msgs)
        pending = list(range(len(msgs)))
        attempt = 0
        while pending:
            futs: dict[int, asyncio.Future[Any]] = {}
            for i in pending:
                m = msgs[i]
                try:
                    futs[i] = await self.js.publish_async(
                        self.subject_of(m), m.payload, headers={"Nats-Msg-Id": m.msg_id}
                    )
                except (nats.errors.Error, OSError) as exc:
                    log.debug("publish_send_failed", extra={"error": type(exc).__name__})
                    break
            if futs:
                wait = max(0.05, min(s.ack_timeout_s, deadline - time.monotonic()))
                await asyncio.wait(futs.values(), timeout=wait)
            retry: list[int] = []
            for i in pending:
                fut = futs.get(i)
                if fut is None or not fut.done() or fut.cancelled():
                    if fut is not None:
                        fut.cancel()
                    retry.append(i)
                    continue
                err = fut.exception()
                if err is None:
                    outcome[i] = DUPLICATE if fut.result().duplicate else PUBLISHED
                elif _permanent(err):
                    outcome[i] = REJECTED
                    self.rejections[msgs[i].msg_id] = _describe(err)
                else:
                    retry.append(i)
            pending = retry
            if pending and self.nc.is_connected:
                pending = await self._probe(msgs, pending, outcome)
            if not pending or time.monotonic() >= deadline:
                break
            attempt += 1
            self.retries += len(pending)
            metrics.record_publish_retries(len(pending))
            delay = full_jitter(min(attempt, 6), base_s=0.05, cap_s=1.0, rand=random.random)
            delay = min(delay, max(0.0, deadline - time.monotonic()))
            log.info(
                "publish_retrying",
                extra={"messages": len(pending), "attempt": attempt, "delay_s": round(delay, 2)},
            )
            await asyncio.sleep(delay)
        return outcome


async def _probe_one(js: Any, subject: str, m: OutMessage, timeout_s: float) -> Any:
    return await js.publish(
        subject, m.payload, timeout=timeout_s, headers={"Nats-Msg-Id": m.msg_id}
    )


def subject_of(m: OutMessage, s: NatsSettings) -> str:
    """Where ``m`` goes: its own subject once outboxed (a later configuration does not move
    messages already accepted), else the configured quote or DLQ subject."""
    return m.subject or (s.dlq_subject if m.dlq else s.subject)


def _permanent(exc: BaseException) -> bool:
    """A JetStream API error about the message itself (size, subject...) is not worth retrying;
    no responders, timeouts and connection errors are."""
    return isinstance(exc, nats.js.errors.APIError) and not isinstance(
        exc, nats.js.errors.NoStreamResponseError | nats.js.errors.ServiceUnavailableError
    )


def _describe(exc: BaseException) -> str:
    desc = getattr(exc, "description", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {desc}"[:200]


class Publisher:
    """The publisher process: one drain task per ring, an outbox replayer, a committer.

    NATS is connected in the background: until it answers (and whenever it stops answering),
    drained messages go to the durable :class:`~engine.sinks.outbox.Outbox` so the rings keep
    moving;
    the replayer sends them, oldest first, as soon as JetStream acknowledges again.
    """

    def __init__(
        self, config: Config, rings: Sequence[Ring], notify_fds: Sequence[int], conn: Connection
    ) -> None:
        self.config = config
        self.rings = list(rings)
        self.notify_fds = list(notify_fds)
        self.conn = conn
        self.stopping = False
        # per cycle: published, deduplicated, dead-lettered as unpublishable, dlq, outboxed
        self.counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        self.seals: dict[int, dict[int, int]] = {}
        self.events = [asyncio.Event() for _ in self.rings]
        self.to_commit: dict[int, int] = {}  # ring -> position published, not yet durable
        self.commit_wake = asyncio.Event()
        self.outbox_wake = asyncio.Event()
        self.store: QuoteStore | None = None
        self.cache: QuoteCache | None = None
        self.jsp: JetStreamPublisher | None = None
        self.outbox = Outbox(config.nats.outbox_dir, config.nats.outbox_max_bytes)
        self.replayed = 0
        self.outbox_messages = 0
        self.replayed_new = 0  # quotes JetStream did not have yet (the rest were deduplicated)
        self.lost = 0
        self._outage_logged = False

    def _wake(self, i: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.notify_fds[i], 4096)
        self.events[i].set()

    def _account(self, msgs: Sequence[OutMessage], outcome: Sequence[int]) -> None:
        for m, o in zip(msgs, outcome, strict=True):
            c = self.counts[m.cycle]
            if o == OUTBOXED:
                c[4] += 1
            elif o == REJECTED:
                c[2] += 1
            elif m.dlq:
                c[3] += o == PUBLISHED
            elif o in (PUBLISHED, DUPLICATE):
                c[o] += 1

    def _check_seals(self) -> None:
        for cycle in sorted(self.seals):
            positions = self.seals[cycle]
            if all(self.rings[r].tail >= p for r, p in positions.items()):
                published, dup, failed, dlq, outboxed = self.counts.pop(cycle, [0, 0, 0, 0, 0])
                del self.seals[cycle]
                ipc.send(
                    self.conn,
                    ipc.CyclePublished(
                        cycle=cycle,
                        counts=PublishCounts(
                            published=published,
                            deduplicated=dup,
                            failed=failed,
                            dlq=dlq,
                            outboxed=outboxed,
                        ),
                    ),
                )

    # -- publishing --------------------------------------------------------------------------

    async def _publish_or_outbox(self, msgs: list[OutMessage]) -> list[int]:
        """Publish, or durably outbox what NATS does not take; never returns FAILED."""
        while not self.outbox.has_room():  # backpressure: the rings hold the rest
            if not self._outage_logged:
                log.error("outbox_full", extra={"bytes": self.outbox.size_bytes})
                self._outage_logged = True
            await asyncio.sleep(0.5)
        jsp = self.jsp
        if jsp is None or len(self.outbox):  # keep order: behind what is already waiting
            self._to_outbox(msgs)
            self.outbox_wake.set()
            return [OUTBOXED] * len(msgs)
        deadline = time.monotonic() + self.config.nats.outbox_after_s
        outcome = await jsp.publish(msgs, deadline=deadline)
        failed = [m for m, o in zip(msgs, outcome, strict=True) if o == FAILED]
        if failed:
            self._to_outbox(failed)
            if not self._outage_logged:
                log.warning("outbox_started", extra={"messages": len(failed)})
                self._outage_logged = True
            outcome = [OUTBOXED if o == FAILED else o for o in outcome]
        rejected = [m for m, o in zip(msgs, outcome, strict=True) if o == REJECTED]
        if rejected:
            await self._dead_letter(jsp, rejected)
        return outcome

    def _to_outbox(self, msgs: Sequence[OutMessage]) -> None:
        s = self.config.nats
        self.outbox.append([msgspec.structs.replace(m, subject=subject_of(m, s)) for m in msgs])
        self._outbox_depth(len(msgs))
        self.outbox_wake.set()

    def _outbox_depth(self, change: int) -> None:
        """The outbox's message count, kept as a running total for the metric."""
        self.outbox_messages = max(0, self.outbox_messages + change)
        metrics.set_outbox_depth(self.outbox_messages, self.outbox.size_bytes)

    async def _watch_dlq(self, every_s: float = DLQ_POLL_S) -> None:
        """Report the dead-letter stream's depth (stream info) every ``every_s``."""
        while True:
            jsp = self.jsp
            if jsp is not None:
                try:
                    info = await jsp.js.stream_info(self.config.nats.dlq_stream)
                    metrics.set_dlq_depth(int(info.state.messages))
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    log.debug("dlq_depth_unavailable", extra={"error": type(exc).__name__})
            # until JetStream is connected, look again soon: the first depth comes with it
            await asyncio.sleep(every_s if jsp is not None else min(every_s, 0.5))

    async def _dead_letter(self, jsp: JetStreamPublisher, msgs: Sequence[OutMessage]) -> None:
        """Messages JetStream refused go to the DLQ verbatim, with JetStream's reason."""
        letters = []
        for m in msgs:
            reason = jsp.rejections.pop(m.msg_id, "rejected by JetStream")
            log.error("message_unpublishable", extra={"msg_id": m.msg_id, "error": reason})
            if m.dlq:  # a dead letter that cannot be stored either: nothing more to try
                self.lost += 1
                continue
            letters.append(
                OutMessage(
                    True,
                    f"unpublishable:{m.msg_id}",
                    encode_dlq(unpublishable(m, jsp.subject_of(m), reason)),
                    m.cycle,
                )
            )
        if letters:
            await self._publish_or_outbox(letters)

    async def _connect(self) -> None:
        s = self.config.nats
        nc = await connect_nats(s, closing=self.closing)
        jsp = JetStreamPublisher(s, nc)
        jsp.closing = self.closing
        try:
            await jsp.ensure_streams()
        except PublishError as exc:  # the stream cannot be set up: a configuration problem
            log.error("publisher_fatal", extra={"error": str(exc)})
            ipc.send(self.conn, ipc.Fatal(message=str(exc)))
            await jsp.aclose()
            return
        self.jsp = jsp
        log.info("nats_ready", extra={"url": s.url.redacted(), "outbox_segments": len(self.outbox)})
        self.outbox_wake.set()

    async def _replay(self) -> None:
        """Send the outbox, oldest first, whenever JetStream takes messages."""
        while True:
            jsp = self.jsp
            item = self.outbox.oldest() if jsp is not None else None
            if item is None or jsp is None:
                self.outbox_wake.clear()
                await self.outbox_wake.wait()
                continue
            path, msgs = item
            outcome = await jsp.publish(
                msgs, deadline=time.monotonic() + self.config.nats.ack_timeout_s
            )
            if FAILED in outcome:
                await asyncio.sleep(1.0)
                continue
            rejected = [m for m, o in zip(msgs, outcome, strict=True) if o == REJECTED]
            self.outbox.remove(path)
            self._outbox_depth(-len(msgs))
            self.replayed += len(msgs)
            self.replayed_new += sum(
                1 for m, o in zip(msgs, outcome, strict=True) if o == PUBLISHED and not m.dlq
            )
            if rejected:
                await self._dead_letter(jsp, rejected)
            if not len(self.outbox):
                log.info(
                    "outbox_drained",
                    extra={"replayed": self.replayed, "replayed_new_quotes": self.replayed_new},
                )
                self._outage_logged = False

    async def _drain(self, i: int) -> None:
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
            d = to_messages(recs)
            outcome = await self._publish_or_outbox(d.messages)
            self._account(d.messages, outcome)
            if self.store is not None:
                self.store.submit(d.quotes)
            if self.cache is not None:
                self.cache.submit([*d.quotes, *d.unchanged])
            pos += len(recs)
            self.to_commit[i] = pos
            self.commit_wake.set()

    async def _committer(self, drains: Sequence[asyncio.Task[None]]) -> None:
        """Move ring tails once what was taken is durable: in JetStream or the outbox, and in
        PostgreSQL or its spill file."""
        timeout = self.config.postgres.flush_timeout_s
        while True:
            await self.commit_wake.wait()
            self.commit_wake.clear()
            batch, self.to_commit = self.to_commit, {}
            if batch and self.store is not None:
                t0 = time.perf_counter()
                await self.store.flush(timeout)
                metrics.record_store_flush(time.perf_counter() - t0)
                metrics.record_store_stats(self.store.stats)
            if batch and self.cache is not None:
                metrics.record_cache_stats(self.cache.stats)
            for i, pos in batch.items():
                self.rings[i].commit(pos)
            self._check_seals()
            if self.stopping and all(d.done() for d in drains) and not self.to_commit:
                return

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        logs.bind(role="publisher")
        loop = asyncio.get_running_loop()
        reader = ConnReader(self.conn, child=True)
        self.closing = asyncio.Event()
        for i, fd in enumerate(self.notify_fds):
            loop.add_reader(fd, self._wake, i)
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
                await self._serve(reader)
        except StoreError as exc:  # cannot be set up: a configuration problem
            log.error("publisher_fatal", extra={"error": str(exc)})
            ipc.send(self.conn, ipc.Fatal(message=str(exc)))
        finally:
            if self.jsp is not None:
                await self.jsp.aclose()

    async def _serve(self, reader: ConnReader) -> None:
        connector = asyncio.create_task(self._connect())
        replayer = asyncio.create_task(self._replay())
        dlq_watch = asyncio.create_task(self._watch_dlq())
        if len(self.outbox):
            log.warning("outbox_found", extra={"segments": len(self.outbox)})
        # reported from the start, 0 included: an empty series is not a healthy one
        self._outbox_depth(self.outbox.count_messages())
        ipc.send(self.conn, ipc.PublisherReady(pid=os.getpid()))
        drains = [asyncio.create_task(self._drain(i)) for i in range(len(self.rings))]
        committer = asyncio.create_task(self._committer(drains))
        while True:
            msg = await reader.get()
            if isinstance(msg, ipc.Seal):
                self.seals[msg.cycle] = msg.positions
                self._check_seals()
            elif msg is None or isinstance(msg, ipc.Stop):
                grace = msg.grace_s if isinstance(msg, ipc.Stop) else 10.0
                await self._stop(grace, drains, committer, replayer, connector, dlq_watch)
                return

    async def _stop(
        self,
        grace: float,
        drains: Sequence[asyncio.Task[None]],
        committer: asyncio.Task[None],
        replayer: asyncio.Task[None],
        connector: asyncio.Task[None],
        dlq_watch: asyncio.Task[None],
    ) -> None:
        """Drain every ring (into JetStream or the outbox), then give the outbox up to the grace
        period to empty; what is left stays on disk for the next start."""
        deadline = time.monotonic() + grace
        self.stopping = True
        for e in self.events:
            e.set()
        await asyncio.gather(*drains)
        self.commit_wake.set()
        await committer
        while len(self.outbox) and self.jsp is not None and time.monotonic() < deadline:
            self.outbox_wake.set()
            await asyncio.sleep(0.05)
        for task in (replayer, connector, dlq_watch):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.cache is not None:
            await self.cache.drain(min(grace, 5.0))
        log.info(
            "publisher_stopped",
            extra={
                "left_in_rings": sum(r.occupancy() for r in self.rings),
                "outbox_segments": len(self.outbox),
                "lost": self.lost,
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
    run_loop(Publisher(config, rings, notify_fds, conn).run())
