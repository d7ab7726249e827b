"""JetStream client of the publisher: the streams, and acknowledged, retried, pipelined publishing.

* :class:`JetStreamPublisher` owns the NATS connection (async context manager): on enter it
  connects (retrying, logging each attempt) and makes sure both streams exist - the quote stream
  on ``data.market.quote`` and the dead-letter stream on ``data.market.dlq`` - with file storage,
  a duplicate window and a max age; on exit it drains the connection.
* Publishing is pipelined: every message of a chunk goes out with ``publish_async`` (bounded
  number of un-acked messages), then every ack is checked. A message whose ack is an error or does
  not arrive in time is published again with the same ``Nats-Msg-Id`` - JetStream drops the copy
  if the first one did land, so retries never duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from engine.config import NatsSettings
from engine.deps.nats import close as close_nats
from engine.deps.nats import connect as connect_nats
from engine.deps.nats import ensure_stream
from engine.deps.nats import translate as translate_nats
from engine.errors import ConfigError, PublishError
from engine.observe import metrics
from engine.records import OutMessage
from engine.retry import backoff_s
from engine.stats import Outcome

log = logging.getLogger(__name__)

RETRY_BASE_S: Final = 0.05
RETRY_CAP_S: Final = 1.0
"""Publish retries wait a full-jitter backoff between these (the ceiling doubles per round)."""
PROBE_TIMEOUT_CAP_S: Final = 2.0


class JetStreamPublisher:
    """JetStream connection with stream set-up and acknowledged, retried publishing."""

    def __init__(
        self,
        settings: NatsSettings,
        nc: Any,
        closing: asyncio.Event | None = None,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream(publish_async_max_pending=settings.max_pending_acks)
        self.retries = 0
        self.closing = closing or asyncio.Event()
        self.rejections: dict[str, str] = {}  # msg id -> JetStream's error, until dead-lettered
        self._rand = rand
        self.reconnected = asyncio.Event()
        """Set by the connection after a reconnect: the server may have lost the streams."""
        self.streams_ok = True
        """No publish has found a stream missing (nor a reconnect happened) since they were
        ensured (:meth:`connect` ensures them before handing the publisher out)."""

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, settings: NatsSettings, *, attempts: int | None = None
    ) -> AsyncIterator[JetStreamPublisher]:
        closing, reconnected = asyncio.Event(), asyncio.Event()
        nc = await connect_nats(
            settings, attempts=attempts, closing=closing, reconnected=reconnected
        )
        pub = cls(settings, nc, closing)
        pub.reconnected = reconnected
        try:
            await pub.ensure_streams()
            yield pub
        finally:
            await pub.aclose()

    async def aclose(self) -> None:
        await close_nats(self.nc, self.closing)

    async def ensure_streams(self) -> None:
        s = self.settings
        self.reconnected.clear()
        for name, subject in ((s.stream, s.subject), (s.dlq_stream, s.dlq_subject)):
            await ensure_stream(self.js, name, subject, s)
        self.streams_ok = True

    async def _reensure_streams(self) -> None:
        """After a reconnect, or once a publish found no stream: create the streams again (a
        deleted stream, a server restarted with empty storage). A failure is logged; the
        publish goes on (and fails, so its messages are outboxed) and the next one tries again."""
        if self.reconnected.is_set():
            self.streams_ok = False
        if self.streams_ok or not self.nc.is_connected:
            return
        try:
            with translate_nats("cannot ensure the streams"):
                await self.ensure_streams()
        except (PublishError, ConfigError) as exc:  # ConfigError: no JetStream (yet)
            log.warning("streams_ensure_failed", extra={"error_kind": exc.kind, "error": str(exc)})
            return
        log.info("streams_ensured", extra={"stream": self.settings.stream})

    def _note(self, err: BaseException) -> None:
        """A publish answered "no stream" (no responders): the streams must be ensured again."""
        if isinstance(err, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
            if self.streams_ok:
                log.warning("stream_missing", extra={"stream": self.settings.stream})
            self.streams_ok = False

    async def stored_ids(self, stream: str, since: float, *, batch: int = 1000) -> set[str]:
        """The ``Nats-Msg-Id`` of every message ``stream`` stored from ``since`` (epoch seconds)
        on, up to its last message now: headers only, through an ephemeral pull consumer."""
        try:
            info = await self.js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return set()
        last = info.state.last_seq
        ids: set[str] = set()
        if info.state.messages == 0:
            return ids
        cfg = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=datetime.fromtimestamp(since, UTC),
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            inactive_threshold=60.0,
        )
        sub = await self.js.pull_subscribe("", stream=stream, config=cfg)
        try:
            if (await sub.consumer_info()).num_pending == 0:
                return ids  # nothing stored from since on
            while True:
                try:
                    got = await sub.fetch(batch, timeout=self.settings.ack_timeout_s)
                except nats.errors.TimeoutError:
                    return ids  # nothing (more) stored from since on
                for m in got:
                    if m.headers and (mid := m.headers.get("Nats-Msg-Id")):
                        ids.add(mid)
                    meta = m.metadata
                    if meta.sequence.stream >= last or meta.num_pending == 0:
                        return ids
        finally:
            await sub.unsubscribe()

    def subject_of(self, m: OutMessage) -> str:
        return subject_of(m, self.settings)

    async def _probe(
        self, msgs: Sequence[OutMessage], pending: list[int], outcome: list[Outcome]
    ) -> list[int]:
        """Publish still-unacknowledged messages one by one, synchronously.

        nats-py's ``publish_async`` never resolves a future whose ack is a JetStream error (the
        error is raised inside its reply handler), so a message JetStream refuses looks exactly
        like a lost ack. While the connection is up, a synchronous publish tells them apart: it
        raises the API error. The first timeout ends the probe (an outage, not a refusal).
        """
        left = list(pending)
        timeout = min(self.settings.ack_timeout_s, PROBE_TIMEOUT_CAP_S)
        for i in pending:
            m = msgs[i]
            try:
                ack = await self.js.publish(
                    self.subject_of(m),
                    m.payload,
                    timeout=timeout,
                    headers={"Nats-Msg-Id": m.msg_id},
                )
            except nats.js.errors.APIError as err:
                self._note(err)
                if not permanent(err):
                    break
                outcome[i] = Outcome.REJECTED
                self.rejections[m.msg_id] = describe(err)
            except (nats.errors.Error, TimeoutError, OSError):
                break
            else:
                outcome[i] = Outcome.DUPLICATE if ack.duplicate else Outcome.PUBLISHED
            left.remove(i)
        return left

    async def _send(self, msgs: Sequence[OutMessage], pending: list[int]) -> dict[int, Any]:
        """``publish_async`` every pending message (until the connection refuses): their futures."""
        futs: dict[int, asyncio.Future[Any]] = {}
        for i in pending:
            m = msgs[i]
            try:
                futs[i] = await self.js.publish_async(
                    self.subject_of(m), m.payload, headers={"Nats-Msg-Id": m.msg_id}
                )
            except (nats.errors.Error, OSError) as exc:
                log.debug("publish_send_failed", extra={"error_kind": type(exc).__name__})
                break
        return futs

    def _collect(
        self,
        msgs: Sequence[OutMessage],
        pending: list[int],
        futs: dict[int, asyncio.Future[Any]],
        outcome: list[Outcome],
    ) -> list[int]:
        """Record the acks that arrived; the messages still to retry."""
        retry: list[int] = []
        for i in pending:
            fut = futs.get(i)
            if fut is None or not fut.done() or fut.cancelled():
                if fut is not None:
                    fut.cancel()
                retry.append(i)
                continue
            err = fut.exception()
            if err is not None:
                self._note(err)
            if err is None:
                outcome[i] = Outcome.DUPLICATE if fut.result().duplicate else Outcome.PUBLISHED
            elif permanent(err):
                outcome[i] = Outcome.REJECTED
                self.rejections[msgs[i].msg_id] = describe(err)
            else:
                retry.append(i)
        return retry

    async def publish(self, msgs: Sequence[OutMessage], *, deadline: float) -> list[Outcome]:
        """Publish ``msgs``, re-publishing what is not acknowledged, until ``deadline``.

        Outcome per message: PUBLISHED, DUPLICATE (JetStream already had that Nats-Msg-Id),
        REJECTED (JetStream answered an error for that message: it will never be taken) or
        FAILED (no ack by the deadline: NATS unreachable - the caller outboxes it).
        """
        outcome = [Outcome.FAILED] * len(msgs)
        pending = list(range(len(msgs)))
        attempt = 0
        while pending:
            await self._reensure_streams()
            futs = await self._send(msgs, pending)
            if futs:
                wait = max(0.05, min(self.settings.ack_timeout_s, deadline - time.monotonic()))
                await asyncio.wait(futs.values(), timeout=wait)
            pending = self._collect(msgs, pending, futs, outcome)
            if pending and self.nc.is_connected:
                pending = await self._probe(msgs, pending, outcome)
            if not pending or time.monotonic() >= deadline:
                break
            attempt += 1
            self.retries += len(pending)
            metrics.record_publish_retries(len(pending))
            delay = backoff_s(
                min(attempt, 6), base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S, jitter=1.0, rand=self._rand
            )
            delay = min(delay, max(0.0, deadline - time.monotonic()))
            log.info(
                "publish_retrying",
                extra={"messages": len(pending), "attempt": attempt, "delay_s": round(delay, 2)},
            )
            await asyncio.sleep(delay)
        return outcome


def subject_of(m: OutMessage, s: NatsSettings) -> str:
    """Where ``m`` goes: its own subject once outboxed (a later configuration does not move
    messages already accepted), else the configured quote or DLQ subject."""
    return m.subject or (s.dlq_subject if m.dlq else s.subject)


def permanent(exc: BaseException) -> bool:
    """A JetStream API error about the message itself (size, subject...) is not worth retrying;
    no responders, timeouts and connection errors are."""
    return isinstance(exc, nats.js.errors.APIError) and not isinstance(
        exc, nats.js.errors.NoStreamResponseError | nats.js.errors.ServiceUnavailableError
    )


def describe(exc: BaseException) -> str:
    """JetStream's reason for refusing a message, as the dead letter records it."""
    desc = getattr(exc, "description", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {desc}"[:200]
