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
from typing import Any, Final

import nats.errors
import nats.js.errors

from engine.config import NatsSettings
from engine.deps.nats import close as close_nats
from engine.deps.nats import connect as connect_nats
from engine.deps.nats import ensure_stream
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

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, settings: NatsSettings, *, attempts: int | None = None
    ) -> AsyncIterator[JetStreamPublisher]:
        closing = asyncio.Event()
        pub = cls(
            settings, await connect_nats(settings, attempts=attempts, closing=closing), closing
        )
        try:
            await pub.ensure_streams()
            yield pub
        finally:
            await pub.aclose()

    async def aclose(self) -> None:
        await close_nats(self.nc, self.closing)

    async def ensure_streams(self) -> None:
        s = self.settings
        for name, subject in ((s.stream, s.subject), (s.dlq_stream, s.dlq_subject)):
            await ensure_stream(self.js, name, subject, s)

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
