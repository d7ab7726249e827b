"""Delivery: JetStream or the outbox, order behind the outbox, replay, dead letters (fake NATS)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import msgspec
import pytest

from engine.config import NatsSettings
from engine.records import OutMessage
from engine.sinks import delivery as delivery_mod
from engine.sinks import outbox as outbox_mod
from engine.sinks.delivery import Delivery
from engine.sinks.jetstream import JetStreamPublisher
from engine.sinks.outbox import Outbox
from engine.stats import Outcome
from tests.unit.sinks.fake_jetstream import FakeNats

SETTINGS = NatsSettings(ack_timeout_s=0.05, outbox_after_s=0.1)


def quotes(prefix: str, n: int, *, cycle: int = 1) -> list[OutMessage]:
    return [OutMessage(False, f"{prefix}{i}:100", b"{}", cycle) for i in range(n)]


def make(tmp_path: Path, *, connected: bool = True) -> tuple[Delivery, FakeNats]:
    nc = FakeNats()
    d = Delivery(SETTINGS, Outbox(tmp_path, 1 << 20))
    if connected:
        d.connected(JetStreamPublisher(SETTINGS, nc, rand=lambda: 0.0))
    return d, nc


async def replay_all(d: Delivery) -> None:
    assert d.jsp is not None
    while (item := await d.outbox.oldest()) is not None:
        assert await d.replay_segment(d.jsp, item)


class TestSend:
    async def test_published_directly_while_jetstream_answers(self, tmp_path: Path) -> None:
        d, nc = make(tmp_path)
        assert await d.send(quotes("A", 2)) == [Outcome.PUBLISHED] * 2
        assert len(d.outbox) == 0 and nc.js.order == ["A0:100", "A1:100"]

    async def test_outboxed_until_connected_with_the_subject_fixed(self, tmp_path: Path) -> None:
        d, _ = make(tmp_path, connected=False)
        assert await d.send(quotes("A", 2)) == [Outcome.OUTBOXED] * 2
        item = await d.outbox.oldest()
        assert item is not None
        assert [m.subject for m in item[1]] == [SETTINGS.subject] * 2
        assert d.outbox_messages == 2 and d.wake.is_set()

    async def test_messages_drained_before_nats_connects_wait_for_it(self, tmp_path: Path) -> None:
        """At start the rings may be drained before the connection is up: the first batch waits
        up to nats.outbox_after_s for it instead of going to the outbox at once."""
        d, nc = make(tmp_path, connected=False)
        sending = asyncio.create_task(d.send(quotes("A", 2)))
        await asyncio.sleep(SETTINGS.outbox_after_s / 4)
        assert not sending.done()
        d.connected(JetStreamPublisher(SETTINGS, nc, rand=lambda: 0.0))
        assert await asyncio.wait_for(sending, 1) == [Outcome.PUBLISHED] * 2
        assert len(d.outbox) == 0 and nc.js.order == ["A0:100", "A1:100"]

    async def test_unacknowledged_messages_go_to_the_outbox(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        d, nc = make(tmp_path)
        nc.js.down = True
        with caplog.at_level(logging.WARNING):
            assert await d.send(quotes("A", 2)) == [Outcome.OUTBOXED] * 2
        assert "outbox_started" in caplog.messages
        assert d.outbox.count_messages() == 2

    async def test_new_messages_queue_behind_the_outbox_and_replay_keeps_order(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        d, nc = make(tmp_path)
        nc.js.down = True
        await d.send(quotes("A", 2))
        nc.js.down = False
        # JetStream answers again, but the outbox is not empty: B waits behind A
        assert await d.send(quotes("B", 2)) == [Outcome.OUTBOXED] * 2
        assert nc.js.order == []
        with caplog.at_level(logging.INFO):
            await replay_all(d)
        assert nc.js.order == ["A0:100", "A1:100", "B0:100", "B1:100"]
        assert d.replayed == 4 and d.replayed_new == 4 and d.outbox_messages == 0
        assert "outbox_drained" in caplog.messages
        assert await d.send(quotes("C", 1)) == [Outcome.PUBLISHED]  # direct again

    async def test_full_outbox_holds_the_drain_back(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Backpressure, not loss: send waits for room instead of dropping or overfilling."""
        monkeypatch.setattr(delivery_mod, "OUTBOX_FULL_POLL_S", 0.01)
        nc = FakeNats()
        d = Delivery(SETTINGS, Outbox(tmp_path, 1))
        await d.send(quotes("A", 1))  # not connected: outboxed, and now the outbox is full
        sending = asyncio.create_task(d.send(quotes("B", 1)))
        await asyncio.sleep(0.05)
        assert not sending.done() and len(d.outbox) == 1
        d.connected(JetStreamPublisher(SETTINGS, nc, rand=lambda: 0.0))
        await replay_all(d)
        assert await asyncio.wait_for(sending, 1) == [Outcome.PUBLISHED]
        assert nc.js.order == ["A0:100", "B0:100"]


class TestDeadLetters:
    async def test_refused_quote_is_dead_lettered_as_unpublishable(self, tmp_path: Path) -> None:
        d, nc = make(tmp_path)
        nc.js.refuse.add("A1:100")
        out = await d.send(quotes("A", 2, cycle=7))
        assert out == [Outcome.PUBLISHED, Outcome.REJECTED]
        subject, payload = nc.js.stored["unpublishable:A1:100"]
        assert subject == SETTINGS.dlq_subject
        letter = msgspec.json.decode(payload)
        assert letter["kind"] == "unpublishable" and letter["original_msg_id"] == "A1:100"
        assert letter["cycle"] == 7 and "message size exceeds" in letter["detail"]
        assert d.lost == 0 and d.jsp is not None and d.jsp.rejections == {}

    async def test_refused_dead_letter_is_lost_not_retried(self, tmp_path: Path) -> None:
        d, nc = make(tmp_path)
        nc.js.refuse.add("X:rejected:1")
        out = await d.send([OutMessage(True, "X:rejected:1", b"{}", 1)])
        assert out == [Outcome.REJECTED]
        assert d.lost == 1 and nc.js.stored == {}


class TestReplay:
    async def test_segment_stays_while_jetstream_does_not_acknowledge(self, tmp_path: Path) -> None:
        d, nc = make(tmp_path, connected=False)
        await d.send(quotes("A", 2))
        jsp = JetStreamPublisher(SETTINGS, nc, rand=lambda: 0.0)
        nc.js.down = True
        item = await d.outbox.oldest()
        assert item is not None
        assert not await d.replay_segment(jsp, item)
        assert len(d.outbox) == 1 and d.replayed == 0

    async def test_replayed_duplicates_are_not_counted_as_new(self, tmp_path: Path) -> None:
        d, nc = make(tmp_path, connected=False)
        await d.send(quotes("A", 3))
        nc.js.stored["A0:100"] = (SETTINGS.subject, b"{}")  # landed before the outage
        d.connected(JetStreamPublisher(SETTINGS, nc, rand=lambda: 0.0))
        await replay_all(d)
        assert d.replayed == 3 and d.replayed_new == 2

    async def test_replay_task_sends_the_outbox_once_connected(self, tmp_path: Path) -> None:
        d, nc = make(tmp_path, connected=False)
        await d.send(quotes("A", 2))
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(d.replay())
            await asyncio.sleep(0.02)
            assert nc.js.order == []  # not connected: waits
            d.connected(JetStreamPublisher(SETTINGS, nc, rand=lambda: 0.0))
            for _ in range(100):
                if not len(d.outbox):
                    break
                await asyncio.sleep(0.01)
            task.cancel()
        assert nc.js.order == ["A0:100", "A1:100"]


class TestOutboxUnwritable:
    async def test_write_failure_holds_back_until_jetstream_takes_them(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """NATS down and the outbox unwritable (a fake filesystem layer: every write fails):
        send waits (the records stay in the ring); when JetStream answers it publishes them."""
        monkeypatch.setattr(delivery_mod, "OUTBOX_FULL_POLL_S", 0.01)
        d, nc = make(tmp_path)
        nc.js.down = True

        def no_space(*args: object) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(outbox_mod.os, "write", no_space)
        with caplog.at_level(logging.ERROR):
            sending = asyncio.create_task(d.send(quotes("A", 2)))
            await asyncio.sleep(0.3)
        assert not sending.done() and len(d.outbox) == 0
        assert caplog.messages.count("outbox_write_failed") == 1
        nc.js.down = False
        assert await asyncio.wait_for(sending, 2) == [Outcome.PUBLISHED] * 2
        assert nc.js.order == ["A0:100", "A1:100"] and d.outbox_messages == 0


class TestPastWindow:
    def test_only_segments_the_window_may_have_forgotten_are_verified(self) -> None:
        d = Delivery(NatsSettings(duplicate_window_s=120, ack_timeout_s=5), Outbox.__new__(Outbox))
        now = time.time()
        assert not d.past_window(now)
        assert not d.past_window(now - 100)
        assert d.past_window(now - 111)  # 111 + 5 (ack) + 5 (clock skew) > 120

    async def test_old_segment_publishes_only_what_the_streams_lack(self, tmp_path: Path) -> None:
        d, nc = make(tmp_path, connected=False)
        assert d.outbox.append(quotes("A", 3), since=time.time() - 3600) is None
        jsp = JetStreamPublisher(SETTINGS, nc, rand=lambda: 0.0)
        reads: list[tuple[str, float]] = []

        async def stored_ids(stream: str, since: float) -> set[str]:
            reads.append((stream, since))
            return {"A1:100"} if stream == SETTINGS.stream else set()

        jsp.stored_ids = stored_ids  # type: ignore[assignment,method-assign]
        d.connected(jsp)
        await replay_all(d)
        assert nc.js.order == ["A0:100", "A2:100"]
        assert [s for s, _ in reads] == [SETTINGS.stream, SETTINGS.dlq_stream]
        assert d.replayed == 3 and d.replayed_new == 2
