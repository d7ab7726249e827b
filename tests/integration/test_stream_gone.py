"""The quote stream gone (deleted mid-run; NATS restarted with empty storage): the publisher
creates the streams again and publishing resumes, instead of outboxing forever."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import nats.js.errors
import pytest

from engine.config import NatsSettings, Secret
from engine.records import OutMessage
from engine.sinks.delivery import Delivery
from engine.sinks.jetstream import JetStreamPublisher
from engine.sinks.outbox import Outbox
from engine.stats import Outcome
from testkit import OwnNats
from testkit.services import NATS_URL

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def settings_for(names: dict[str, str], url: str = NATS_URL, **kw: object) -> NatsSettings:
    return NatsSettings(
        url=Secret(url),
        stream=names["INGEST_NATS__STREAM"],
        subject=names["INGEST_NATS__SUBJECT"],
        dlq_stream=names["INGEST_NATS__DLQ_STREAM"],
        dlq_subject=names["INGEST_NATS__DLQ_SUBJECT"],
        ack_timeout_s=0.5,
        connect_timeout_s=1.0,
        outbox_after_s=1.0,
        **kw,  # type: ignore[arg-type]
    )


def quotes(prefix: str, n: int = 5) -> list[OutMessage]:
    return [OutMessage(False, f"{prefix}{i}:100", b"{}", 1) for i in range(n)]


async def stored_ids(url: str, stream: str) -> Counter[str]:
    """Every ``Nats-Msg-Id`` the stream holds (empty if there is no such stream)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return Counter()
        out: Counter[str] = Counter()
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                m = await js.get_msg(stream, seq)
                out[(m.headers or {}).get("Nats-Msg-Id", "")] += 1
        return out
    finally:
        await nc.close()


async def until(cond: Callable[[], Awaitable[bool]], within_s: float, what: str) -> None:
    """Poll ``cond`` (another server's state, which we cannot subscribe to)."""
    deadline = time.monotonic() + within_s
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within_s}s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def delivering(s: NatsSettings, outbox_dir: Path) -> AsyncIterator[Delivery]:
    """A connected Delivery with its replayer running (as the publisher runs it)."""
    async with JetStreamPublisher.connect(s, attempts=3) as jsp:
        d = Delivery(s, Outbox(outbox_dir, 1 << 30))
        d.connected(jsp)
        async with asyncio.TaskGroup() as tg:
            replayer = tg.create_task(d.replay())
            try:
                yield d
            finally:
                replayer.cancel()


async def delete_stream(url: str, stream: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


class TestStreamGone:
    @pytest.mark.timeout(30)
    async def test_deleted_stream_is_recreated_and_publishing_resumes(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        s = settings_for(nats_names)
        async with delivering(s, tmp_path / "outbox") as d:
            assert await d.send(quotes("A")) == [Outcome.PUBLISHED] * 5
            await delete_stream(NATS_URL, s.stream)
            await d.send(quotes("B"))
            await d.send(quotes("C"))

            async def all_stored() -> bool:
                ids = await stored_ids(NATS_URL, s.stream)
                return len(d.outbox) == 0 and set(ids) >= {m.msg_id for m in quotes("C")}

            await until(all_stored, 15, "stream recreated and B, C published")
            ids = await stored_ids(NATS_URL, s.stream)
            assert set(ids) == {m.msg_id for m in [*quotes("B"), *quotes("C")]}
            assert max(ids.values()) == 1
            # publishing is direct again, not through the outbox
            assert await d.send(quotes("D")) == [Outcome.PUBLISHED] * 5

    @pytest.mark.timeout(60)
    async def test_nats_restarted_with_wiped_storage_gets_its_streams_back(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        store = tmp_path / "js"
        server = OwnNats(store)
        server.start()
        try:
            s = settings_for(nats_names, server.url)
            async with delivering(s, tmp_path / "outbox") as d:
                assert await d.send(quotes("A")) == [Outcome.PUBLISHED] * 5
                server.kill()
                shutil.rmtree(store)
                server.start()
                await d.send(quotes("B"))

                async def b_stored() -> bool:
                    with contextlib.suppress(OSError, nats.errors.Error):
                        ids = await stored_ids(server.url, s.stream)
                        return len(d.outbox) == 0 and set(ids) >= {m.msg_id for m in quotes("B")}
                    return False

                await until(b_stored, 30, "streams recreated after the wipe and B published")
                assert await d.send(quotes("C")) == [Outcome.PUBLISHED] * 5
        finally:
            server.kill()


class TestReplayPastTheWindow:
    @pytest.mark.timeout(30)
    async def test_replay_older_than_the_window_does_not_duplicate(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """A batch reached the stream but its ack was lost, so it was outboxed; the outbox is
        replayed after JetStream's duplicate window (1 s here) has forgotten its ids. What the
        stream holds is not published again; what it lacks is."""
        s = settings_for(nats_names, duplicate_window_s=1.0)
        async with JetStreamPublisher.connect(s, attempts=3) as jsp:
            since = time.time()
            landed, lost = quotes("A"), quotes("B")
            assert await jsp.publish(landed, deadline=time.monotonic() + 5) == [
                Outcome.PUBLISHED
            ] * len(landed)
            outbox = Outbox(tmp_path / "outbox", 1 << 30)
            outbox.append([*landed, *lost], since=since)  # "no ack": outboxed
            await asyncio.sleep(2.5)  # the window passes: JetStream forgets A's ids
            d = Delivery(s, outbox)
            async with asyncio.TaskGroup() as tg:
                replayer = tg.create_task(d.replay())
                d.connected(jsp)

                async def drained() -> bool:
                    return len(d.outbox) == 0

                await until(drained, 15, "outbox replayed")
                replayer.cancel()
        ids = await stored_ids(NATS_URL, s.stream)
        assert set(ids) == {m.msg_id for m in [*landed, *lost]}
        assert max(ids.values()) == 1, f"duplicated: {[k for k, v in ids.items() if v > 1]}"
        assert d.replayed == 10 and d.replayed_new == 5
