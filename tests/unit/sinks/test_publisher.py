"""The publisher process loop, in-process: rings -> JetStream (fake) or the outbox, the cycle
report, the stop/drain sequence, and a failing task taking the process down."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine.config import Config, NatsSettings, PostgresSettings, RedisSettings
from engine.errors import PublishError
from engine.quote import Quote
from engine.records import to_records
from engine.ringbuf import Ring
from engine.runtime import ipc
from engine.sinks import jetstream as jetstream_mod
from engine.sinks.publisher import Publisher
from engine.stats import PublishCounts
from tests.unit.sinks.fake_jetstream import FakeNats

T = 1_764_000_000


def quote(sym: str) -> Quote:
    return Quote(
        symbol=sym, price=10.0, volume=1, change_percent=None, market_time=T,
        market_state="REGULAR", currency="USD", exchange="NYQ", source="", ingest_time_ns=0,
        correlation_id="",
    )  # fmt: skip


@dataclass
class Harness:
    publisher: Publisher
    ring: Ring
    supervisor_end: Connection
    notify_w: int
    nats: FakeNats

    def write(self, cycle: int, symbols: list[str]) -> int:
        recs = to_records([quote(s) for s in symbols], [], cycle=cycle, source=0,
                          ingest_time_ns=T * 10**9)  # fmt: skip
        assert self.ring.try_write(recs)
        os.write(self.notify_w, b"x")
        return self.ring.head

    async def expect(self, kind: type[Any], timeout_s: float = 5.0) -> Any:
        async with asyncio.timeout(timeout_s):
            while True:
                while self.supervisor_end.poll():
                    msg = ipc.recv(self.supervisor_end)
                    if isinstance(msg, kind):
                        return msg
                await asyncio.sleep(0.01)

    def send(self, msg: ipc.Message) -> None:
        ipc.send(self.supervisor_end, msg)


@pytest.fixture
def ring() -> Iterator[Ring]:
    r = Ring.create(1024)
    yield r
    r.close()


@pytest.fixture
async def harness(
    tmp_path: Path, ring: Ring, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    nc = FakeNats()

    async def connect(settings: NatsSettings, **kw: Any) -> FakeNats:
        return nc

    async def no_stream_setup(*args: Any) -> None:
        return None

    monkeypatch.setattr(jetstream_mod, "connect_nats", connect)
    monkeypatch.setattr(jetstream_mod, "ensure_stream", no_stream_setup)
    config = msgspec.structs.replace(
        Config(),
        nats=NatsSettings(
            outbox_dir=str(tmp_path / "outbox"), ack_timeout_s=0.1, outbox_after_s=0.2
        ),
        postgres=PostgresSettings(enabled=False),
        redis=RedisSettings(enabled=False),
    )
    notify_r, notify_w = os.pipe()
    os.set_blocking(notify_r, False)
    supervisor_end, child_end = Pipe()
    try:
        yield Harness(Publisher(config, [ring], [notify_r], child_end), ring, supervisor_end,
                      notify_w, nc)  # fmt: skip
    finally:
        for c in (supervisor_end, child_end):
            c.close()
        os.close(notify_r)
        os.close(notify_w)


class TestPublisherProcess:
    async def test_cycle_is_published_reported_and_released(self, harness: Harness) -> None:
        running = asyncio.create_task(harness.publisher.run())
        await harness.expect(ipc.PublisherReady)
        end = harness.write(1, ["AAA", "BBB", "CCC"])
        harness.send(ipc.Seal(cycle=1, positions={0: end}))
        report = await harness.expect(ipc.CyclePublished)
        assert report == ipc.CyclePublished(cycle=1, counts=PublishCounts(published=3))
        assert harness.ring.tail == end
        assert harness.nats.js.order == [f"{s}:{T}:1" for s in ("AAA", "BBB", "CCC")]
        harness.send(ipc.Stop(grace_s=1.0))
        await asyncio.wait_for(running, 5)
        assert harness.nats.is_closed

    async def test_records_drained_at_stop_go_to_the_outbox_while_nats_is_down(
        self, harness: Harness
    ) -> None:
        harness.nats.js.down = True
        running = asyncio.create_task(harness.publisher.run())
        await harness.expect(ipc.PublisherReady)
        end = harness.write(2, ["AAA", "BBB"])
        harness.send(ipc.Seal(cycle=2, positions={0: end}))
        harness.send(ipc.Stop(grace_s=0.2))
        report = await harness.expect(ipc.CyclePublished)
        assert report.counts.outboxed == 2 and report.counts.published == 0
        await asyncio.wait_for(running, 5)
        assert harness.ring.tail == end  # released: durable in the outbox
        assert harness.publisher.delivery.outbox.count_messages() == 2

    async def test_a_failing_task_takes_the_publisher_down(
        self, harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No task dies silently: the failure is logged and ends the process (to be restarted)."""

        async def broken(every_s: float = 0.0) -> None:
            raise RuntimeError("dlq watch broke")

        monkeypatch.setattr(harness.publisher, "_watch_dlq", broken)
        with caplog.at_level(logging.ERROR), pytest.raises(ExceptionGroup) as err:
            await asyncio.wait_for(harness.publisher.run(), 5)
        assert err.group_contains(RuntimeError, match="dlq watch broke")
        failed = [r for r in caplog.records if r.getMessage() == "task_failed"]
        assert failed and failed[0].task == "dlq-watch"  # type: ignore[attr-defined]
        assert harness.nats.is_closed

    async def test_streams_that_cannot_be_set_up_are_fatal(
        self, harness: Harness, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A configuration problem is reported as Fatal (not retried by a restart)."""

        async def refused(*args: Any) -> None:
            raise PublishError("cannot create stream: another stream owns the subject")

        monkeypatch.setattr(jetstream_mod, "ensure_stream", refused)
        running = asyncio.create_task(harness.publisher.run())
        fatal = await harness.expect(ipc.Fatal)
        assert "another stream owns the subject" in fatal.message
        assert harness.nats.is_closed and harness.publisher.jsp is None
        harness.send(ipc.Stop(grace_s=0.1))
        await asyncio.wait_for(running, 5)
