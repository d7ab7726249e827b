"""Into JetStream, or durably into the outbox: the publisher's delivery of drained messages.

:class:`Delivery` takes the messages of a drained chunk and returns one final
:class:`~engine.stats.Outcome` per message: published/deduplicated by JetStream, refused by it
(then dead-lettered as unpublishable), or written to the :class:`~engine.sinks.outbox.Outbox`
when NATS does not acknowledge in time (or is not connected yet). Once anything waits in the
outbox, new messages queue behind it, and :meth:`Delivery.replay` sends the outbox, oldest
first, whenever JetStream takes messages again.

:meth:`Delivery.send` returns only once every message is in JetStream or in the outbox: when
the outbox cannot be written (full, disk full), it waits and tries again, so the drain holds
back and the records stay in the ring. A segment replayed after JetStream's duplicate window
may have passed is first checked against the streams (:meth:`Delivery.past_window`): only what
they do not already hold is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

from engine.config import NatsSettings
from engine.deps.nats import ERRORS as NATS_ERRORS
from engine.observe import metrics
from engine.records import OutMessage, encode_dlq, unpublishable
from engine.retry import backoff_s
from engine.sinks.jetstream import JetStreamPublisher, subject_of
from engine.sinks.outbox import Outbox, OutboxWriteError, Pending
from engine.stats import Outcome

log = logging.getLogger(__name__)

OUTBOX_FULL_POLL_S: Final = 0.5
"""While the outbox is full, how often to look for room (the rings hold the rest meanwhile)."""
REPLAY_RETRY_S: Final = 1.0
"""Wait after a replay JetStream did not fully acknowledge (no jitter: one replayer)."""
CLOCK_SKEW_S: Final = 5.0
"""Margin between this host's clock and nats-server's, when comparing a segment's first-attempt
time with the duplicate window and with the stream's stored times."""


class Delivery:
    """Publish to JetStream or outbox; replay the outbox; dead-letter what JetStream refuses."""

    def __init__(self, settings: NatsSettings, outbox: Outbox) -> None:
        self.settings = settings
        self.outbox = outbox
        self.jsp: JetStreamPublisher | None = None
        """Set once NATS is connected and the streams exist; until then everything is outboxed."""
        self.wake = asyncio.Event()
        """Set when the outbox may have work for the replayer."""
        self.ready = asyncio.Event()
        """Set once JetStream is connected for the first time."""
        self.replayed = 0
        self.replayed_new = 0  # quotes JetStream did not have yet (the rest were deduplicated)
        self.outbox_messages = 0
        self.lost = 0
        self._outage_logged = False
        self._write_failing = False
        self._index: StreamIndex | None = None
        """What the streams hold since some time, while replaying segments older than the
        duplicate window (None: not needed yet, or no longer trustworthy)."""

    def connected(self, jsp: JetStreamPublisher) -> None:
        """JetStream answers: publish directly (once the outbox is empty) and replay."""
        self.jsp = jsp
        self.ready.set()
        self.wake.set()

    async def send(self, msgs: list[OutMessage]) -> list[Outcome]:
        """Publish, or durably outbox what NATS does not take; never returns FAILED.

        Returns only once every message is in JetStream or in the outbox: while neither takes
        them (NATS down and the outbox full or its disk failing) it waits, so the drain holds
        back and the records stay in the ring."""
        outcome = [Outcome.FAILED] * len(msgs)
        since = time.time()  # from now on any of them may reach JetStream
        todo = list(range(len(msgs)))
        if not self.ready.is_set() and not len(self.outbox):
            # start-up: the rings may be drained before the first connection is up; wait for it
            # as long as an unacknowledged publish would before outboxing
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), self.settings.outbox_after_s)
        while todo:
            await self._wait_for_room()
            jsp = self.jsp
            batch = [msgs[i] for i in todo]
            if jsp is None or len(self.outbox):  # keep order: behind what is already waiting
                got = [Outcome.FAILED] * len(batch)
            else:
                got = await jsp.publish(
                    batch, deadline=time.monotonic() + self.settings.outbox_after_s
                )
            for i, o in zip(todo, got, strict=True):
                outcome[i] = o
            failed = [i for i in todo if outcome[i] is Outcome.FAILED]
            if failed and self._to_outbox([msgs[i] for i in failed], since):
                for i in failed:
                    outcome[i] = Outcome.OUTBOXED
                if jsp is not None and not self._outage_logged and got.count(Outcome.FAILED):
                    log.warning("outbox_started", extra={"messages": len(failed)})
                    self._outage_logged = True
                failed = []
            todo = failed
            if todo:  # neither JetStream nor the outbox took them: hold back, try again
                await asyncio.sleep(OUTBOX_FULL_POLL_S)
        rejected = [m for m, o in zip(msgs, outcome, strict=True) if o is Outcome.REJECTED]
        if rejected and self.jsp is not None:
            await self._dead_letter(self.jsp, rejected)
        return outcome

    async def _wait_for_room(self) -> None:
        while not self.outbox.has_room():  # backpressure: the rings hold the rest
            if not self._outage_logged:
                log.error("outbox_full", extra={"bytes": self.outbox.size_bytes})
                self._outage_logged = True
            await asyncio.sleep(OUTBOX_FULL_POLL_S)

    def _to_outbox(self, msgs: Sequence[OutMessage], since: float) -> bool:
        """Append ``msgs`` as one segment; False (logged once) if it could not be written whole."""
        s = self.settings
        try:
            self.outbox.append(
                [msgspec.structs.replace(m, subject=subject_of(m, s)) for m in msgs], since=since
            )
        except OutboxWriteError as exc:
            if not self._write_failing:
                log.error(
                    "outbox_write_failed",
                    extra={
                        "messages": len(msgs),
                        "error_kind": type(exc.__cause__).__name__,
                        "error": str(exc),
                    },
                )
                self._write_failing = True
            return False
        if self._write_failing:
            log.info("outbox_write_recovered", extra={"messages": len(msgs)})
            self._write_failing = False
        self.outbox_depth(len(msgs))
        self.wake.set()
        return True

    def outbox_depth(self, change: int) -> None:
        """The outbox's message count, kept as a running total for the metric."""
        self.outbox_messages = max(0, self.outbox_messages + change)
        metrics.set_outbox_depth(self.outbox_messages, self.outbox.size_bytes)

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
            await self.send(letters)

    async def replay(self) -> None:
        """Send the outbox, oldest first, whenever JetStream takes messages (until cancelled)."""
        failures = 0
        while True:
            jsp = self.jsp
            item = await self.outbox.oldest() if jsp is not None else None
            if item is None or jsp is None:
                self.wake.clear()
                await self.wake.wait()
                continue
            if await self.replay_segment(jsp, item):
                failures = 0
                continue
            await asyncio.sleep(
                backoff_s(failures, base_s=REPLAY_RETRY_S, cap_s=REPLAY_RETRY_S, jitter=0.0)
            )
            failures += 1

    def past_window(self, since: float) -> bool:
        """Could JetStream have forgotten the ids of messages that reached it from ``since`` on,
        by the time this replay's publishes arrive? Then deduplication alone is not enough."""
        s = self.settings
        arrive = time.time() + s.ack_timeout_s + CLOCK_SKEW_S
        return arrive >= since + s.duplicate_window_s

    async def _already_stored(self, jsp: JetStreamPublisher, item: Pending) -> set[Key]:
        """The messages of ``item`` the streams already hold (read from the streams, from
        ``item.since`` on). Raises the NATS error when the streams cannot be read."""
        start = item.since - CLOCK_SKEW_S
        if self._index is None or start < self._index.start:
            s = self.settings
            index = StreamIndex(start)
            for dlq, stream in ((False, s.stream), (True, s.dlq_stream)):
                ids = await jsp.stored_ids(stream, start)
                index.keys.update((dlq, i) for i in ids)
            self._index = index
            log.info(
                "outbox_replay_verifying",
                extra={"since": round(start, 3), "stored": len(index.keys)},
            )
        return {(m.dlq, m.msg_id) for m in item.msgs} & self._index.keys

    async def replay_segment(self, jsp: JetStreamPublisher, item: Pending) -> bool:
        """Publish one outbox segment; drop it once every message is in JetStream (or refused
        and dead-lettered). False: JetStream did not acknowledge all of it, the segment stays.

        A segment older than the duplicate window is checked against the streams first: what
        they already hold is not published again (JetStream no longer knows its id)."""
        msgs = item.msgs
        stored: set[Key] = set()
        if self.past_window(item.since):
            try:
                stored = await self._already_stored(jsp, item)
            except NATS_ERRORS as exc:
                log.warning("outbox_replay_verify_failed", extra={"error_kind": type(exc).__name__})
                return False
        todo = [m for m in msgs if (m.dlq, m.msg_id) not in stored]
        deadline = time.monotonic() + self.settings.ack_timeout_s
        outcome = await jsp.publish(todo, deadline=deadline) if todo else []
        if Outcome.FAILED in outcome:
            self._index = None  # some may land later, unseen by the index: read the streams again
            return False
        if self._index is not None:
            self._index.keys.update((m.dlq, m.msg_id) for m in todo)
        rejected = [m for m, o in zip(todo, outcome, strict=True) if o is Outcome.REJECTED]
        await self.outbox.remove(item.path)
        self.outbox_depth(-len(msgs))
        self.replayed += len(msgs)
        self.replayed_new += sum(
            1 for m, o in zip(todo, outcome, strict=True) if o is Outcome.PUBLISHED and not m.dlq
        )
        if rejected:
            await self._dead_letter(jsp, rejected)
        if not len(self.outbox):
            log.info(
                "outbox_drained",
                extra={"replayed": self.replayed, "replayed_new_quotes": self.replayed_new},
            )
            self._outage_logged = False
            self._index = None
        return True


Key = tuple[bool, str]
"""A message as the streams know it: (dead letter?, Nats-Msg-Id)."""


@dataclass
class StreamIndex:
    """The message ids both streams hold from ``start`` on (plus what the replay added)."""

    start: float
    keys: set[Key] = field(default_factory=set)
