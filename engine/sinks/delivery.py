"""Into JetStream, or durably into the outbox: the publisher's delivery of drained messages.

:class:`Delivery` takes the messages of a drained chunk and returns one final
:class:`~engine.stats.Outcome` per message: published/deduplicated by JetStream, refused by it
(then dead-lettered as unpublishable), or written to the :class:`~engine.sinks.outbox.Outbox`
when NATS does not acknowledge in time (or is not connected yet). Once anything waits in the
outbox, new messages queue behind it, and :meth:`Delivery.replay` sends the outbox, oldest
first, whenever JetStream takes messages again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec

from engine.config import NatsSettings
from engine.observe import metrics
from engine.records import OutMessage, encode_dlq, unpublishable
from engine.retry import backoff_s
from engine.sinks.jetstream import JetStreamPublisher, subject_of
from engine.sinks.outbox import Outbox
from engine.stats import Outcome

log = logging.getLogger(__name__)

OUTBOX_FULL_POLL_S: Final = 0.5
"""While the outbox is full, how often to look for room (the rings hold the rest meanwhile)."""
REPLAY_RETRY_S: Final = 1.0
"""Wait after a replay JetStream did not fully acknowledge (no jitter: one replayer)."""


class Delivery:
    """Publish to JetStream or outbox; replay the outbox; dead-letter what JetStream refuses."""

    def __init__(self, settings: NatsSettings, outbox: Outbox) -> None:
        self.settings = settings
        self.outbox = outbox
        self.jsp: JetStreamPublisher | None = None
        """Set once NATS is connected and the streams exist; until then everything is outboxed."""
        self.wake = asyncio.Event()
        """Set when the outbox may have work for the replayer."""
        self.replayed = 0
        self.replayed_new = 0  # quotes JetStream did not have yet (the rest were deduplicated)
        self.outbox_messages = 0
        self.lost = 0
        self._outage_logged = False

    def connected(self, jsp: JetStreamPublisher) -> None:
        """JetStream answers: publish directly (once the outbox is empty) and replay."""
        self.jsp = jsp
        self.wake.set()

    async def send(self, msgs: list[OutMessage]) -> list[Outcome]:
        """Publish, or durably outbox what NATS does not take; never returns FAILED."""
        while not self.outbox.has_room():  # backpressure: the rings hold the rest
            if not self._outage_logged:
                log.error("outbox_full", extra={"bytes": self.outbox.size_bytes})
                self._outage_logged = True
            await asyncio.sleep(OUTBOX_FULL_POLL_S)
        jsp = self.jsp
        if jsp is None or len(self.outbox):  # keep order: behind what is already waiting
            self._to_outbox(msgs)
            return [Outcome.OUTBOXED] * len(msgs)
        deadline = time.monotonic() + self.settings.outbox_after_s
        outcome = await jsp.publish(msgs, deadline=deadline)
        failed = [m for m, o in zip(msgs, outcome, strict=True) if o is Outcome.FAILED]
        if failed:
            self._to_outbox(failed)
            if not self._outage_logged:
                log.warning("outbox_started", extra={"messages": len(failed)})
                self._outage_logged = True
            outcome = [Outcome.OUTBOXED if o is Outcome.FAILED else o for o in outcome]
        rejected = [m for m, o in zip(msgs, outcome, strict=True) if o is Outcome.REJECTED]
        if rejected:
            await self._dead_letter(jsp, rejected)
        return outcome

    def _to_outbox(self, msgs: Sequence[OutMessage]) -> None:
        s = self.settings
        self.outbox.append([msgspec.structs.replace(m, subject=subject_of(m, s)) for m in msgs])
        self.outbox_depth(len(msgs))
        self.wake.set()

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
            item = self.outbox.oldest() if jsp is not None else None
            if item is None or jsp is None:
                self.wake.clear()
                await self.wake.wait()
                continue
            if await self.replay_segment(jsp, *item):
                failures = 0
                continue
            await asyncio.sleep(
                backoff_s(failures, base_s=REPLAY_RETRY_S, cap_s=REPLAY_RETRY_S, jitter=0.0)
            )
            failures += 1

    async def replay_segment(
        self, jsp: JetStreamPublisher, path: Path, msgs: list[OutMessage]
    ) -> bool:
        """Publish one outbox segment; drop it once every message is in JetStream (or refused
        and dead-lettered). False: JetStream did not acknowledge all of it, the segment stays."""
        outcome = await jsp.publish(msgs, deadline=time.monotonic() + self.settings.ack_timeout_s)
        if Outcome.FAILED in outcome:
            return False
        rejected = [m for m, o in zip(msgs, outcome, strict=True) if o is Outcome.REJECTED]
        self.outbox.remove(path)
        self.outbox_depth(-len(msgs))
        self.replayed += len(msgs)
        self.replayed_new += sum(
            1 for m, o in zip(msgs, outcome, strict=True) if o is Outcome.PUBLISHED and not m.dlq
        )
        if rejected:
            await self._dead_letter(jsp, rejected)
        if not len(self.outbox):
            log.info(
                "outbox_drained",
                extra={"replayed": self.replayed, "replayed_new_quotes": self.replayed_new},
            )
            self._outage_logged = False
        return True
