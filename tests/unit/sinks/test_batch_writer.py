"""BatchWriter and Outage: the one background batch loop of the store and the cache."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

from engine.errors import CacheError, StoreError
from engine.sinks.batch_writer import BatchResult, BatchWriter, Outage


class FakeSink:
    """Pending work is a queue of planned results (a BatchResult, or an exception to raise)."""

    def __init__(self, *plan: BatchResult | Exception, outage: Outage | None = None) -> None:
        self.outage = outage
        self.plan: deque[BatchResult | Exception] = deque(plan)
        self.calls = 0
        self.failed: list[Exception] = []
        self.written = 0

    def has_work(self) -> bool:
        return bool(self.plan)

    async def write_batch(self) -> BatchResult:
        self.calls += 1
        step = self.plan[0]
        if isinstance(step, Exception):
            self.plan.popleft()
            raise step
        self.plan.popleft()
        return step

    def batch_failed(self, exc: Exception) -> None:
        self.failed.append(exc)

    def batch_written(self) -> None:
        self.written += 1
        if self.outage is not None:
            self.outage.up()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_outage_counts_once_per_outage_and_measures_it() -> None:
    clock = Clock()
    o = Outage(clock)
    assert o.up() is None  # available: nothing ended
    assert o.down() is True
    assert o.down() is False  # still the same outage
    o.attempt = 3
    clock.now += 7.5
    assert o.up() == 7.5
    assert (o.available, o.outages, o.attempt) == (True, 1, 0)
    assert o.down() is True and o.outages == 2


def test_outage_reports_the_cause_of_an_engine_error() -> None:
    o = Outage()
    try:
        try:
            raise ConnectionResetError("reset")
        except OSError as exc:
            raise StoreError("write failed") from exc
    except StoreError as err:
        assert o.record_error(err).__class__ is ConnectionResetError
    assert o.last_error_kind == "ConnectionResetError"
    o.record_error(CacheError("no cause"))
    assert o.last_error_kind == "CacheError"
    cause = ValueError("x")
    plain = RuntimeError("y")
    plain.__cause__ = cause
    o.record_error(plain)  # only the engine's own errors are unwrapped
    assert o.last_error_kind == "RuntimeError"


async def test_writes_until_no_work_then_waits_for_a_wake() -> None:
    sink = FakeSink(BatchResult.WRITTEN, BatchResult.WRITTEN)
    w = BatchWriter(sink, backoff=lambda n: 0.0)
    task = asyncio.create_task(w.run())
    assert await w.wait_until(lambda: not sink.plan, 1.0)
    assert (sink.calls, sink.written) == (2, 2)
    sink.plan.append(BatchResult.WRITTEN)
    w.wake()
    assert await w.wait_until(lambda: sink.written == 3, 1.0)
    w.close()
    await asyncio.wait_for(task, 1.0)  # ends by itself once closed


async def test_failure_keeps_going_with_exponential_backoff_and_resets_on_success() -> None:
    delays: list[int] = []

    def backoff(attempt: int) -> float:
        delays.append(attempt)
        return 0.0

    boom = [StoreError("down"), StoreError("still down")]
    outage = Outage()
    outage.down()
    sink = FakeSink(*boom, BatchResult.WRITTEN, outage=outage)
    w = BatchWriter(sink, backoff=backoff, outage=outage)
    task = asyncio.create_task(w.run())
    assert await w.wait_until(lambda: sink.written == 1, 1.0)
    assert sink.failed == boom
    assert delays == [0, 1]  # the attempt grows per failure...
    assert w.outage.attempt == 0  # ...and the sink's recovery resets it
    w.close()
    await asyncio.wait_for(task, 1.0)


async def test_dropped_batch_is_not_a_recovery() -> None:
    sink = FakeSink(BatchResult.DROPPED)
    w = BatchWriter(sink, backoff=lambda n: 0.0)
    task = asyncio.create_task(w.run())
    assert await w.wait_until(lambda: not sink.plan, 1.0)
    assert (sink.calls, sink.written) == (1, 0)
    w.close()
    await asyncio.wait_for(task, 1.0)


async def test_wait_until_times_out_with_the_condition_false() -> None:
    sink = FakeSink()
    w = BatchWriter(sink, backoff=lambda n: 0.0)
    assert await w.wait_until(lambda: False, 0.05) is False
    assert await w.wait_until(lambda: True, 0.0) is True


async def test_close_cuts_a_backoff_short() -> None:
    sink = FakeSink(StoreError("down"))
    w = BatchWriter(sink, backoff=lambda n: 60.0)
    task = asyncio.create_task(w.run())
    assert await w.wait_until(lambda: bool(sink.failed), 1.0)
    w.close()
    await asyncio.wait_for(task, 1.0)  # not 60 s


async def test_cancel_propagates() -> None:
    sink = FakeSink()
    w = BatchWriter(sink, backoff=lambda n: 0.0)
    task = asyncio.create_task(w.run())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
