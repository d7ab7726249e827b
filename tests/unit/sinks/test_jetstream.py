"""The JetStream client: per-message outcomes, retries, refusals, subjects (fake JetStream)."""

from __future__ import annotations

import time

import msgspec
import nats.errors
import nats.js.errors

from engine.config import NatsSettings
from engine.records import OutMessage
from engine.sinks.jetstream import (
    JetStreamPublisher,
    describe,
    permanent,
    read_answer,
    subject_of,
)
from engine.stats import Outcome
from tests.unit.sinks.fake_jetstream import FakeMsg, FakeNats

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
        """JetStream's error answer names the message it refuses; the others are published."""
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

    async def test_at_most_max_pending_acks_wait_for_their_ack(self) -> None:
        nc = FakeNats()
        jsp = JetStreamPublisher(
            msgspec.structs.replace(SETTINGS, max_pending_acks=4), nc, rand=lambda: 0.0
        )
        out = await jsp.publish(quotes(50), deadline=time.monotonic() + 2)
        assert out == [Outcome.PUBLISHED] * 50
        assert nc.most_unanswered == 4
        assert nc.js.sends == 50  # nothing retried: the window only paced them

    async def test_a_late_ack_of_a_finished_round_is_ignored(self) -> None:
        nc = FakeNats()
        jsp = publisher(nc)
        nc.js.down = True
        assert await jsp.publish(quotes(1), deadline=time.monotonic()) == [Outcome.FAILED]
        nc.js.down = False
        stale = FakeMsg(f"{jsp._inbox}.1.0", b'{"stream":"S","seq":9}')
        await jsp._on_ack(stale)  # round 1 is over: nothing to record it in
        assert await jsp.publish(quotes(1), deadline=time.monotonic() + 1) == [Outcome.PUBLISHED]

    async def test_close_is_idempotent(self) -> None:
        nc = FakeNats()
        jsp = publisher(nc)
        await jsp.aclose()
        await jsp.aclose()
        assert nc.is_closed and jsp.closing.is_set()


class TestHelpers:
    def test_read_answer(self) -> None:
        ack = read_answer(FakeMsg("x", b'{"stream":"Q","seq":7,"duplicate":true}'))
        assert not isinstance(ack, BaseException) and ack.duplicate and ack.seq == 7
        err = read_answer(
            FakeMsg("x", b'{"error":{"code":400,"err_code":10054,"description":"too big"}}')
        )
        assert isinstance(err, nats.js.errors.BadRequestError) and permanent(err)
        assert describe(err) == "BadRequestError: too big"
        busy = read_answer(FakeMsg("x", b'{"error":{"code":503,"description":"busy"}}'))
        assert isinstance(busy, nats.js.errors.ServiceUnavailableError) and not permanent(busy)
        gone = read_answer(FakeMsg("x", b"", {"Status": "503"}))  # no responders: no stream
        assert isinstance(gone, nats.js.errors.NoStreamResponseError) and not permanent(gone)
        junk = read_answer(FakeMsg("x", b"<html>"))
        assert isinstance(junk, nats.errors.Error) and not permanent(junk)

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

        async def ensure_streams() -> None:
            ensured.append(True)
            jsp.streams_ok = True
            nc.js.no_stream = False

        nc.js.no_stream = True
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
