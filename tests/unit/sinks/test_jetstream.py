"""The JetStream client: per-message outcomes, retries, refusals, subjects (fake JetStream)."""

from __future__ import annotations

import asyncio
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


class TestStreamGone:
    async def test_no_stream_answer_ensures_the_streams_again_and_publishes(self) -> None:
        """A deleted stream answers "no stream" (no responders): the publisher creates the
        streams again within the same publish instead of failing every message."""
        nc = FakeNats()
        jsp = publisher(nc)
        ensured: list[bool] = []

        async def no_stream(subject: str, payload: bytes, headers: dict[str, str]) -> object:
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(nats.js.errors.NoStreamResponseError())
            return fut

        async def no_stream_sync(
            subject: str,
            payload: bytes,
            timeout: float,  # noqa: ASYNC109
            headers: dict[str, str],
        ) -> object:
            raise nats.js.errors.NoStreamResponseError()

        async def ensure_streams() -> None:
            ensured.append(True)
            jsp.streams_ok = True
            nc.js.publish_async, nc.js.publish = real  # type: ignore[method-assign]

        real = nc.js.publish_async, nc.js.publish
        nc.js.publish_async = no_stream  # type: ignore[method-assign]
        nc.js.publish = no_stream_sync  # type: ignore[method-assign]
        jsp.ensure_streams = ensure_streams  # type: ignore[method-assign]
        out = await jsp.publish(quotes(2), deadline=time.monotonic() + 2)
        assert out == [Outcome.PUBLISHED] * 2 and ensured == [True]

    async def test_reconnect_makes_the_next_publish_ensure_the_streams(self) -> None:
        nc = FakeNats()
        jsp = publisher(nc)
        ensured: list[bool] = []

        async def ensure_streams() -> None:
            ensured.append(True)
            jsp.reconnected.clear()
            jsp.streams_ok = True

        jsp.ensure_streams = ensure_streams  # type: ignore[method-assign]
        await jsp.publish(quotes(1), deadline=time.monotonic() + 1)
        assert ensured == []  # nothing happened: no extra round trip
        jsp.reconnected.set()
        await jsp.publish(quotes(1, cycle=2), deadline=time.monotonic() + 1)
        assert ensured == [True]
