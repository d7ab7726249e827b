"""Publisher process: drains every worker's ring into NATS JetStream.

* :class:`JetStreamPublisher` owns the NATS connection (async context manager): on enter it
  connects (retrying, logging each attempt) and makes sure both streams exist - the quote stream
  on ``data.market.quote`` and the dead-letter stream on ``data.market.dlq`` - with file storage,
  a duplicate window and a max age; on exit it drains the connection.
* Publishing is pipelined: every message of a chunk goes out with ``publish_async`` (bounded
  number of un-acked messages), then every ack is checked. A message whose ack is an error or does
  not arrive in time is published again with the same ``Nats-Msg-Id`` - JetStream drops the copy
  if the first one did land, so retries never duplicate.
* The same chunk's quotes go to PostgreSQL (:class:`~engine.store.QuoteStore`, COPY in the
  background) and Redis (:class:`~engine.cache.QuoteCache`); neither can hold up publishing.
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

import nats
import nats.errors
import nats.js.errors
from nats.js.api import StorageType, StreamConfig

from engine import ipc, logs
from engine.backoff import full_jitter
from engine.cache import QuoteCache
from engine.config import Config, NatsSettings
from engine.errors import PublishError, StoreError
from engine.proc import ConnReader, child_init, run_loop
from engine.records import OutMessage, to_messages
from engine.ringbuf import Ring
from engine.store import QuoteStore

log = logging.getLogger(__name__)

PUBLISHED: Final = 0
DUPLICATE: Final = 1
FAILED: Final = 2
CHUNK: Final = 2048  # records read from a ring per publish round


class JetStreamPublisher:
    """JetStream connection with stream set-up and acknowledged, retried publishing."""

    def __init__(self, settings: NatsSettings, nc: Any) -> None:
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream(publish_async_max_pending=settings.max_pending_acks)
        self.retries = 0
        self.closing = asyncio.Event()

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

    async def publish(
        self, msgs: Sequence[OutMessage], *, give_up_at: float | None = None
    ) -> list[int]:
        """Publish ``msgs`` until each is acknowledged; outcome per message.

        Retries without limit (the ring holds the data meanwhile) unless ``give_up_at``
        (monotonic time) passes, after which the rest are reported FAILED.
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
                        s.dlq_subject if m.dlq else s.subject,
                        m.payload,
                        headers={"Nats-Msg-Id": m.msg_id},
                    )
                except (nats.errors.Error, OSError) as exc:
                    log.debug("publish_send_failed", extra={"error": type(exc).__name__})
                    break
            if futs:
                await asyncio.wait(futs.values(), timeout=s.ack_timeout_s)
            retry: list[int] = []
            for i in pending:
                fut = futs.get(i)
                if fut is None or not fut.done():
                    if fut is not None:
                        fut.cancel()
                    retry.append(i)
                elif fut.cancelled() or fut.exception() is not None:
                    retry.append(i)
                else:
                    outcome[i] = DUPLICATE if fut.result().duplicate else PUBLISHED
            pending = retry
            if not pending:
                break
            attempt += 1
            self.retries += len(pending)
            if give_up_at is not None and time.monotonic() >= give_up_at:
                log.error("publish_given_up", extra={"messages": len(pending)})
                break
            delay = full_jitter(min(attempt, 6), base_s=0.1, cap_s=5.0, rand=random.random)
            log.warning(
                "publish_retrying",
                extra={"messages": len(pending), "attempt": attempt, "delay_s": round(delay, 2)},
            )
            await asyncio.sleep(delay)
        return outcome


async def connect_nats(
    settings: NatsSettings, *, attempts: int | None = None, closing: asyncio.Event | None = None
) -> Any:
    """Connect with reconnects enabled; retry the first connect (``attempts`` None = forever).

    ``closing`` set by the owner before it drains keeps the normal close out of the warnings.
    """
    closing = closing or asyncio.Event()

    async def on_error(exc: Exception) -> None:
        log.debug("nats_error", extra={"error": type(exc).__name__})

    async def on_disconnect() -> None:
        if not closing.is_set():
            log.warning("nats_disconnected")

    async def on_reconnect() -> None:
        log.info("nats_reconnected")

    n = 0
    while True:
        n += 1
        try:
            return await nats.connect(
                servers=[settings.url.reveal()],
                name=f"ingestion-agent-{os.getpid()}",
                connect_timeout=settings.connect_timeout_s,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            log.warning(
                "nats_connect_failed",
                extra={
                    "url": settings.url.redacted(),
                    "attempt": n,
                    "error": type(exc).__name__,
                },
            )
            if attempts is not None and n >= attempts:
                raise PublishError(
                    f"cannot connect to NATS at {settings.url.redacted()} after {n} attempts: "
                    "is nats-server running with JetStream (-js)? check nats.url"
                ) from exc
            await asyncio.sleep(min(5.0, 0.25 * 2 ** min(n, 5)))


async def ensure_stream(js: Any, name: str, subject: str, s: NatsSettings) -> None:
    """Create the stream, or widen an existing one to include ``subject``."""
    cfg = StreamConfig(
        name=name,
        subjects=[subject],
        storage=StorageType.FILE,
        duplicate_window=s.duplicate_window_s,
        max_age=s.max_age_s,
    )
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(cfg)
        except nats.js.errors.BadRequestError as exc:
            raise PublishError(
                f"cannot create stream {name} on {subject}: {exc.description}; "
                "another stream may already own the subject"
            ) from exc
        log.info("stream_created", extra={"stream": name, "subject": subject})
        return
    current = info.config
    if subject not in (current.subjects or []) or current.duplicate_window != s.duplicate_window_s:
        current.subjects = sorted({*(current.subjects or []), subject})
        current.duplicate_window = s.duplicate_window_s
        await js.update_stream(current)
        log.info("stream_updated", extra={"stream": name, "subject": subject})


class Publisher:
    """The publisher process: one drain task per ring, per-cycle accounting, clean stop."""

    def __init__(
        self, config: Config, rings: Sequence[Ring], notify_fds: Sequence[int], conn: Connection
    ) -> None:
        self.config = config
        self.rings = list(rings)
        self.notify_fds = list(notify_fds)
        self.conn = conn
        self.stopping = False
        self.give_up_at: float | None = None
        self.counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.seals: dict[int, dict[int, int]] = {}
        self.events = [asyncio.Event() for _ in self.rings]
        self.to_commit: dict[int, int] = {}  # ring -> position published, not yet durable
        self.commit_wake = asyncio.Event()
        self.store: QuoteStore | None = None
        self.cache: QuoteCache | None = None

    def _wake(self, i: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.notify_fds[i], 4096)
        self.events[i].set()

    def _account(self, msgs: Sequence[OutMessage], outcome: Sequence[int]) -> None:
        for m, o in zip(msgs, outcome, strict=True):
            c = self.counts[m.cycle]
            if o == FAILED:
                c[2] += 1
            elif m.dlq:
                c[3] += o == PUBLISHED
            else:
                c[o] += 1

    def _check_seals(self) -> None:
        for cycle in sorted(self.seals):
            positions = self.seals[cycle]
            if all(self.rings[r].tail >= p for r, p in positions.items()):
                published, dup, failed, dlq = self.counts.pop(cycle, [0, 0, 0, 0])
                del self.seals[cycle]
                ipc.send(
                    self.conn,
                    ipc.CyclePublished(
                        cycle=cycle, published=published, deduplicated=dup, failed=failed, dlq=dlq
                    ),
                )

    async def _drain(self, i: int, jsp: JetStreamPublisher) -> None:
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
            outcome = await jsp.publish(d.messages, give_up_at=self.give_up_at)
            self._account(d.messages, outcome)
            if self.store is not None:
                self.store.submit(d.quotes)
            if self.cache is not None:
                self.cache.submit([*d.quotes, *d.unchanged])
            pos += len(recs)
            self.to_commit[i] = pos
            self.commit_wake.set()

    async def _committer(self, drains: Sequence[asyncio.Task[None]]) -> None:
        """Move ring tails once what was published is durable in PostgreSQL (or spilled)."""
        timeout = self.config.postgres.flush_timeout_s
        while True:
            await self.commit_wake.wait()
            self.commit_wake.clear()
            batch, self.to_commit = self.to_commit, {}
            if batch and self.store is not None:
                await self.store.flush(timeout)
            for i, pos in batch.items():
                self.rings[i].commit(pos)
            self._check_seals()
            if self.stopping and all(d.done() for d in drains) and not self.to_commit:
                return

    async def run(self) -> None:
        logs.bind(role="publisher")
        loop = asyncio.get_running_loop()
        reader = ConnReader(self.conn)
        for i, fd in enumerate(self.notify_fds):
            loop.add_reader(fd, self._wake, i)
        try:
            async with contextlib.AsyncExitStack() as stack:
                jsp = await stack.enter_async_context(JetStreamPublisher.connect(self.config.nats))
                if self.config.postgres.enabled:
                    self.store = await stack.enter_async_context(
                        QuoteStore.connect(self.config.postgres)
                    )
                if self.config.redis.enabled:
                    self.cache = await stack.enter_async_context(
                        QuoteCache.connect(self.config.redis)
                    )
                await self._serve(jsp, reader)
        except (PublishError, StoreError) as exc:  # cannot be set up: a configuration problem
            log.error("publisher_fatal", extra={"error": str(exc)})
            ipc.send(self.conn, ipc.Fatal(message=str(exc)))

    async def _serve(self, jsp: JetStreamPublisher, reader: ConnReader) -> None:
        ipc.send(self.conn, ipc.PublisherReady(pid=os.getpid()))
        drains = [asyncio.create_task(self._drain(i, jsp)) for i in range(len(self.rings))]
        committer = asyncio.create_task(self._committer(drains))
        while True:
            msg = await reader.get()
            if isinstance(msg, ipc.Seal):
                self.seals[msg.cycle] = msg.positions
                self._check_seals()
            elif msg is None or isinstance(msg, ipc.Stop):
                grace = msg.grace_s if isinstance(msg, ipc.Stop) else 10.0
                self.give_up_at = time.monotonic() + grace
                self.stopping = True
                for e in self.events:
                    e.set()
                await asyncio.gather(*drains)
                self.commit_wake.set()
                await committer
                if self.cache is not None:
                    await self.cache.drain(min(grace, 5.0))
                left = sum(r.occupancy() for r in self.rings)
                log.info("publisher_stopped", extra={"left_in_rings": left})
                return


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
