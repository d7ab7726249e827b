"""The JetStream client: per-message outcomes, retries, refusals, subjects (fake JetStream)."""

from __future__ import annotations

import time

import nats.errors
import nats.js.errors

from engine.config import NatsSettings
from engine.records import OutMessage
from engine.sinks.jetstream import JetStreamPublisher, describe, permanent, subject_of
from engine.stats import Outcome
from tests.unit.sinks.fake_jetstream import FakeNats

SETTINGS = NatsSettings(ack_timeout_s=0.05)


def quotes(n: int, *, cycle: int = 1) -> list[OutMessage]:
    return [OutMessage(False, f"S{i}:100", b"{}", cycle) for i in range(n)]


def publisher(nc: FakeNats) -> JetStreamPublisher:
    return JetStreamPublisher(SETTINGS, nc, rand=lambda: 0.0)


class TestPublish:
    async def test_acknowledged_messages_are_published_then_duplicates(self) -> None:
        nc = FakeNats()
        jsp = publisher(nc)
        batch = quotes(3)
        assert await jsp.publish(batch, deadline=time.monotonic() + 1) == [Outcome.PUBLISHED] * 3
        assert await jsp.publish(batch, deadline=time.monotonic() + 1) == [Outcome.DUPLICATE] * 3
        assert nc.js.order == [m.msg_id for m in batch]
        assert {s for s, _ in nc.js.stored.values()} == {SETTINGS.subject}

    async def test_refused_message_is_rejected_with_jetstreams_reason(self) -> None:
        """publish_async never resolves a refused message: the synchronous probe finds out."""
        nc = FakeNats()
        nc.js.refuse.add("S1:100")
        jsp = publisher(nc)
        out = await jsp.publish(quotes(3), deadline=time.monotonic() + 1)
        assert out == [Outcome.PUBLISHED, Outcome.REJECTED, Outcome.PUBLISHED]
        assert jsp.rejections["S1:100"].startswith("BadRequestError: message size exceeds")
        assert jsp.retries == 0

    async def test_nothing_acknowledged_by_the_deadline_is_failed(self) -> None:
        nc = FakeNats()
        nc.js.down = True
        jsp = publisher(nc)
        out = await jsp.publish(quotes(2), deadline=time.monotonic() + 0.2)
        assert out == [Outcome.FAILED] * 2
        assert jsp.retries >= 2  # re-published (same msg ids) while the deadline allowed
        assert nc.js.sends > 2
        assert nc.js.stored == {}

    async def test_close_is_idempotent(self) -> None:
        nc = FakeNats()
        jsp = publisher(nc)
        await jsp.aclose()
        await jsp.aclose()
        assert nc.is_closed and jsp.closing.is_set()


class TestHelpers:
    def test_subject_of(self) -> None:
        s = SETTINGS
        assert subject_of(OutMessage(False, "a", b"", 1), s) == s.subject
        assert subject_of(OutMessage(True, "a", b"", 1), s) == s.dlq_subject
        assert subject_of(OutMessage(True, "a", b"", 1, "kept.subject"), s) == "kept.subject"

    def test_only_errors_about_the_message_are_permanent(self) -> None:
        assert permanent(nats.js.errors.BadRequestError(description="too big"))
        assert not permanent(nats.js.errors.NoStreamResponseError())
        assert not permanent(nats.js.errors.ServiceUnavailableError())
        assert not permanent(nats.errors.TimeoutError())

    def test_describe_names_the_error_and_is_bounded(self) -> None:
        assert describe(nats.js.errors.BadRequestError(description="x" * 500)).startswith(
            "BadRequestError: xxx"
        )
        assert len(describe(nats.js.errors.BadRequestError(description="x" * 500))) == 200
        assert describe(RuntimeError()) == "RuntimeError: RuntimeError"
