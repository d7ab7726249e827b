"""The committer's release rule and the per-cycle outcome accounting."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.records import OutMessage
from engine.runtime import ipc
from engine.sinks import committer as committer_mod
from engine.sinks.committer import Committer, CycleLedger
from engine.sinks.store import Durability
from engine.stats import Outcome, PublishCounts


@dataclass
class FakeRing:
    tail: int = 0
    commits: list[int] = field(default_factory=list)

    def commit(self, position: int) -> None:
        self.tail = position
        self.commits.append(position)


class FakeStore:
    """flush returns only when the test lets it: PostgreSQL (or its spill) has the rows."""

    def __init__(self) -> None:
        self.flushing = asyncio.Event()
        self.durable = asyncio.Event()
        self.stats: Any = None

    async def make_durable(self, timeout_s: float) -> Durability:
        self.flushing.set()
        await self.durable.wait()
        return Durability.COMMITTED


@pytest.fixture(autouse=True)
def _no_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(committer_mod.metrics, "record_store_stats", lambda stats: None)
    monkeypatch.setattr(committer_mod.metrics, "record_cache_stats", lambda stats: None)


def msg(cycle: int, *, dlq: bool = False) -> OutMessage:
    return OutMessage(dlq, "m", b"", cycle)


class TestLedger:
    def test_outcomes_are_counted_per_cycle(self) -> None:
        reports: list[ipc.CyclePublished] = []
        ledger = CycleLedger([FakeRing(tail=10)], reports.append)
        ledger.account(
            [msg(1), msg(1), msg(1), msg(1), msg(2), msg(1, dlq=True), msg(1, dlq=True)],
            [
                Outcome.PUBLISHED,
                Outcome.DUPLICATE,
                Outcome.REJECTED,
                Outcome.OUTBOXED,
                Outcome.PUBLISHED,
                Outcome.PUBLISHED,
                Outcome.DUPLICATE,  # a dead letter already stored: not counted again
            ],
        )
        ledger.account([msg(1, dlq=True), msg(1, dlq=True)], [Outcome.OUTBOXED, Outcome.REJECTED])
        ledger.seal(1, {0: 10})
        ledger.seal(2, {0: 10})
        assert reports == [
            ipc.CyclePublished(cycle=1, counts=PublishCounts(1, 1, 2, 1, 2)),
            ipc.CyclePublished(cycle=2, counts=PublishCounts(1, 0, 0, 0, 0)),
        ]
        assert ledger.counts == {} and ledger.seals == {}

    def test_cycle_is_reported_once_every_ring_passed_its_seal(self) -> None:
        rings = [FakeRing(), FakeRing()]
        reports: list[ipc.CyclePublished] = []
        ledger = CycleLedger(rings, reports.append)
        ledger.account([msg(3)], [Outcome.PUBLISHED])
        ledger.seal(3, {0: 5, 1: 2})
        rings[0].commit(5)
        ledger.check()
        assert reports == []
        rings[1].commit(2)
        ledger.check()
        assert [r.cycle for r in reports] == [3] and reports[0].counts.published == 1
        ledger.check()
        assert len(reports) == 1


class TestCommitter:
    async def test_ring_released_only_once_postgres_has_the_rows(self) -> None:
        ring = FakeRing()
        store = FakeStore()
        ledger = CycleLedger([ring], lambda m: None)
        c = Committer([ring], ledger, store=store, cache=None, flush_timeout_s=1.0)  # type: ignore[arg-type]
        c.taken(0, 100)
        committing = asyncio.create_task(c.commit())
        await asyncio.wait_for(store.flushing.wait(), 1)
        assert ring.commits == []  # in JetStream, not yet durable in PostgreSQL: kept
        store.durable.set()
        await asyncio.wait_for(committing, 1)
        assert ring.commits == [100]

    async def test_without_a_store_taken_records_are_released_at_once(self) -> None:
        rings = [FakeRing(), FakeRing()]
        c = Committer(rings, CycleLedger(rings, lambda m: None), store=None, cache=None,
                      flush_timeout_s=1.0)  # fmt: skip
        c.taken(0, 3)
        c.taken(0, 7)  # the latest position of a ring wins
        c.taken(1, 2)
        await c.commit()
        assert [r.commits for r in rings] == [[7], [2]]
        await c.commit()  # nothing new: nothing committed again
        assert [r.commits for r in rings] == [[7], [2]]

    async def test_run_commits_what_was_taken_and_returns_when_finished(self) -> None:
        ring = FakeRing()
        reports: list[ipc.CyclePublished] = []
        ledger = CycleLedger([ring], reports.append)
        c = Committer([ring], ledger, store=None, cache=None, flush_timeout_s=1.0)
        finished = False
        running = asyncio.create_task(c.run(lambda: finished))
        ledger.seal(1, {0: 4})
        c.taken(0, 4)
        await asyncio.sleep(0.01)
        assert ring.commits == [4] and [r.cycle for r in reports] == [1]
        assert not running.done()
        finished = True
        c.wake.set()
        await asyncio.wait_for(running, 1)


class StubbornStore:
    """A store whose flush cannot make the rows durable (or raises), then can."""

    def __init__(self, *, raises: bool = False) -> None:
        self.raises = raises
        self.durable = False
        self.stats: Any = None
        self.calls = 0
        self.second_try = asyncio.Event()

    async def make_durable(self, timeout_s: float) -> Durability:
        self.calls += 1
        if self.calls >= 2:
            self.second_try.set()
        if self.durable:
            return Durability.SPILLED
        if self.raises:
            raise OSError("flush broke")
        return Durability.NOT_DURABLE

    async def flush(self, timeout_s: float) -> bool:
        return await self.make_durable(timeout_s) is Durability.COMMITTED


class TestNotDurable:
    async def test_not_durable_keeps_the_records_in_the_ring(self) -> None:
        ring = FakeRing()
        store = StubbornStore()
        c = Committer([ring], CycleLedger([ring], lambda m: None), store=store,  # type: ignore[arg-type]
                      cache=None, flush_timeout_s=0.1)  # fmt: skip
        c.taken(0, 50)
        await c.commit()
        assert ring.commits == [] and c.pending == {0: 50}
        c.taken(0, 80)  # more taken meanwhile: the latest position is what is pending
        store.durable = True
        await c.commit()
        assert ring.commits == [80] and c.pending == {}

    async def test_a_raising_flush_keeps_the_records_in_the_ring(self) -> None:
        ring = FakeRing()
        store = StubbornStore(raises=True)
        c = Committer([ring], CycleLedger([ring], lambda m: None), store=store,  # type: ignore[arg-type]
                      cache=None, flush_timeout_s=0.1)  # fmt: skip
        c.taken(0, 50)
        with pytest.raises(OSError, match="flush broke"):
            await c.commit()
        assert ring.commits == [] and c.pending == {0: 50}

    @pytest.mark.timeout(10)
    async def test_run_retries_until_durable_without_a_new_wake(self) -> None:
        ring = FakeRing()
        store = StubbornStore()
        c = Committer([ring], CycleLedger([ring], lambda m: None), store=store,  # type: ignore[arg-type]
                      cache=None, flush_timeout_s=0.01)  # fmt: skip
        running = asyncio.create_task(c.run(lambda: True))
        c.taken(0, 9)

        await asyncio.wait_for(store.second_try.wait(), 3)
        assert ring.commits == [] and not running.done()
        store.durable = True
        await asyncio.wait_for(running, 5)
        assert ring.commits == [9]
