"""JetStream client of the publisher: the streams, and acknowledged, retried, pipelined publishing.

* :class:`JetStreamPublisher` owns the NATS connection (async context manager): on enter it
  connects (retrying, logging each attempt) and makes sure both streams exist - the quote stream
  on ``data.market.quote`` and the dead-letter stream on ``data.market.dlq`` - with file storage,
  a duplicate window and a max age; on exit it drains the connection.
* Publishing is pipelined: every message of a chunk goes out as a core NATS publish whose reply
  subject is ``<inbox>.<round>.<index>`` (at most ``nats.max_pending_acks`` un-acked), and one
  wildcard subscription on the inbox decodes each ack (a msgspec Struct) into the message's slot.
  The wire protocol is the one of nats-py's ``publish_async``, without its future, task
  callback, stdlib JSON and dataclass per message (a third of the CPU, bench/profile_publish.py),
  and an ack that is a JetStream error is seen (``publish_async`` never resolves those). A
  message whose ack is an error or does not arrive in time is published again with the same
  ``Nats-Msg-Id`` - JetStream drops the copy if the first one did land, so retries never
  duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
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


class _AckError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    """JetStream's answer to a publish: ``{"stream", "seq", "duplicate"}`` or ``{"error"}``."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _AckError | None = None


_ack_decoder: Final = msgspec.json.Decoder(_PubAck)

Answer = _PubAck | BaseException
"""What came back for one message: its ack, or the error JetStream (or NATS) answered."""


def _api_error(e: _AckError) -> nats.js.errors.APIError:
    """nats-py's class for a JetStream error (BadRequestError, ServiceUnavailableError...)."""
    try:
        nats.js.errors.APIError.from_error(
            {"code": e.code, "err_code": e.err_code, "description": e.description}
        )
    except nats.js.errors.APIError as exc:
        return exc
    return nats.js.errors.APIError(code=e.code, description=e.description)  # pragma: no cover


def read_answer(msg: Msg) -> Answer:
    """One ack as JetStream sent it: a 503 status with no body means no stream listens on the
    subject (no responders); a body that is not an ack is an error, retried like a lost ack."""
    if not msg.data and msg.headers and msg.headers.get("Status") == "503":
        return nats.js.errors.NoStreamResponseError()
    try:
        ack = _ack_decoder.decode(msg.data)
    except msgspec.DecodeError as exc:
        return nats.errors.Error(f"unreadable ack: {exc}")
    return ack if ack.error is None else _api_error(ack.error)


class _Round:
    """One round of a :meth:`JetStreamPublisher.publish`: the answer per message index."""

    __slots__ = ("answers", "done", "room", "waiting")

    def __init__(self, n: int) -> None:
        self.answers: list[Answer | None] = [None] * n
        self.waiting = 0  # sent, not answered
        self.done = asyncio.Event()  # nothing sent is waiting
        self.room = asyncio.Event()  # fewer than max_pending_acks are waiting

    def answer(self, i: int, a: Answer, max_pending: int) -> None:
        if self.answers[i] is not None:
            return  # a second answer (a late ack of a retried copy): the first counts
        self.answers[i] = a
        self.waiting -= 1
        if self.waiting <= 0:
            self.done.set()
        if self.waiting < max_pending // 2 + 1:
            self.room.set()


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
        self.js = nc.jetstream()
        self.retries = 0
        self._inbox = ""  # <inbox>.<round>.<index> is each message's reply subject
        self._acks: Any = None  # the inbox subscription, made at the first publish
        self._rounds: dict[int, _Round] = {}
        self._round_no = 0
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

    async def _subscribe_acks(self) -> None:
        """The one subscription every ack arrives on (nats-py re-subscribes after a reconnect)."""
        if self._acks is not None:
            return
        self._inbox = self.nc.new_inbox()
        self._acks = await self.nc.subscribe(
            self._inbox + ".>", cb=self._on_ack, pending_msgs_limit=-1, pending_bytes_limit=-1
        )

    async def _on_ack(self, msg: Msg) -> None:
        round_no, _, index = msg.subject[len(self._inbox) + 1 :].partition(".")
        r = self._rounds.get(int(round_no))
        if r is not None:  # else a late ack of a round that is over: it is retried
            r.answer(int(index), read_answer(msg), self.settings.max_pending_acks)

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

    async def _send(
        self, msgs: Sequence[OutMessage], pending: list[int], r: _Round, no: int, deadline: float
    ) -> None:
        """Publish every pending message (until the connection refuses, or no ack makes room
        for more by the deadline), its reply subject naming round ``no`` and its index."""
        s = self.settings
        subjects = (s.subject, s.dlq_subject)
        prefix = f"{self._inbox}.{no}."
        publish = self.nc.publish
        limit = s.max_pending_acks
        for i in pending:
            m = msgs[i]
            if r.waiting >= limit:
                r.room.clear()
                try:
                    await asyncio.wait_for(r.room.wait(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    break
            try:
                await publish(
                    m.subject or subjects[m.dlq],
                    m.payload,
                    reply=prefix + str(i),
                    headers={"Nats-Msg-Id": m.msg_id},
                )
            except (nats.errors.Error, OSError) as exc:
                log.debug("publish_send_failed", extra={"error_kind": type(exc).__name__})
                break
            r.waiting += 1
            r.done.clear()

    def _collect(
        self, msgs: Sequence[OutMessage], pending: list[int], r: _Round, outcome: list[Outcome]
    ) -> list[int]:
        """Record the answers that arrived; the messages still to retry."""
        retry: list[int] = []
        for i in pending:
            a = r.answers[i]
            if a is None:
                retry.append(i)
            elif isinstance(a, _PubAck):
                outcome[i] = Outcome.DUPLICATE if a.duplicate else Outcome.PUBLISHED
            else:
                self._note(a)
                if permanent(a):
                    outcome[i] = Outcome.REJECTED
                    self.rejections[msgs[i].msg_id] = describe(a)
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
            await self._subscribe_acks()
            self._round_no += 1
            no, r = self._round_no, _Round(len(msgs))
            self._rounds[no] = r
            try:
                await self._send(msgs, pending, r, no, deadline)
                if r.waiting > 0:
                    wait = max(0.05, min(self.settings.ack_timeout_s, deadline - time.monotonic()))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(r.done.wait(), wait)
            finally:
                del self._rounds[no]  # a late ack of this round is ignored: the copy is retried
            pending = self._collect(msgs, pending, r, outcome)
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
