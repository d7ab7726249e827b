"""The store's backlog: batches out in order, kept on failure, spilled past the bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.quote import Quote
from engine.sinks.store.backlog import Backlog
from engine.sinks.store.spill import spill_paths, write_spill_file
from engine.sinks.store.stats import StoreCounters
from tests.unit.sinks.store.quotes import make_quote


def batch(n: int, tag: str = "S") -> list[Quote]:
    return [make_quote(f"{tag}{i}") for i in range(n)]


class Harness:
    def __init__(self, spill_dir: Path, *, max_rows: int = 1000, batch_rows: int = 100) -> None:
        self.c = StoreCounters()
        self.changes = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.backlog = Backlog(
            spill_dir,
            "t",
            max_rows=max_rows,
            batch_rows=batch_rows,
            counters=self.c,
            changed=self._changed,
        )
        self.written: list[list[Quote]] = []
        self.fail = False

    def _changed(self) -> None:
        self.changes += 1

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self.tasks.append(task)
        return task

    async def write(self, quotes: Sequence[Quote]) -> None:
        if self.fail:
            raise ConnectionResetError("down")
        self.written.append(list(quotes))


async def test_batches_out_in_order_up_to_batch_rows(tmp_path: Path) -> None:
    h = Harness(tmp_path, batch_rows=100)
    for tag in "ABC":
        h.backlog.add(batch(60, tag))
    assert h.backlog.rows_buffered == 180 and h.backlog.has_work()
    await h.backlog.write_next(h.write)  # 60 + 60: whole submitted batches, up to 100 rows
    await h.backlog.write_next(h.write)
    assert [len(b) for b in h.written] == [120, 60]
    assert h.written[0][0].symbol == "A0" and h.written[1][0].symbol == "C0"
    assert h.backlog.idle() and not h.backlog.has_work()


async def test_a_failed_write_keeps_the_batch_in_front(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.backlog.add(batch(5, "A"))
    h.fail = True
    with pytest.raises(ConnectionResetError):
        await h.backlog.write_next(h.write)
    h.backlog.add(batch(5, "B"))
    assert h.backlog.rows_buffered == 10
    h.fail = False
    await h.backlog.write_next(h.write)
    assert [q.symbol[0] for q in h.written[0]] == ["A"] * 5 + ["B"] * 5


async def test_over_the_bound_the_queue_is_spilled_and_replayed_first(tmp_path: Path) -> None:
    h = Harness(tmp_path / "spill", max_rows=1000)
    h.backlog.start(h.spawn)
    h.backlog.add(batch(600, "A"))
    h.backlog.add(batch(600, "B"))  # 1200 > 1000: spill everything queued
    assert h.backlog.rows_queued == 0 and not h.backlog.idle()
    await h.backlog.wait_spilled()
    assert h.backlog.rows_spilled == 1200 and h.c.spilled_total == 1200 and h.changes == 1
    h.backlog.add(batch(10, "C"))
    await h.backlog.write_next(h.write)  # the spill file first, in batch_rows chunks
    assert sum(len(b) for b in h.written) == 1200 and h.written[0][0].symbol == "A0"
    assert not spill_paths(tmp_path / "spill", "t")
    await h.backlog.write_next(h.write)
    assert h.written[-1][0].symbol == "C0" and h.backlog.idle()


async def test_spill_failure_keeps_quotes_then_drops_the_oldest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    h = Harness(blocked / "spill", max_rows=1000)
    h.backlog.start(h.spawn)
    for tag in "AB":
        h.backlog.add(batch(600, tag))
    await h.backlog.wait_spilled()  # failed: back in memory, retried only after a while
    assert h.backlog.rows_queued == 1200 and h.c.spilled_total == 0
    with caplog.at_level(logging.ERROR, logger="engine.sinks.store.backlog"):
        h.backlog.add(batch(900, "C"))  # 2100 > 2 * 1000: the oldest batch goes
        h.backlog.add(batch(900, "D"))
    assert h.c.dropped == 1200 and h.backlog.rows_queued == 1800
    events = [r.getMessage() for r in caplog.records]
    assert events.count("quotes_dropped") == 1  # logged once while dropping


async def test_spill_all_and_replay_by_a_new_backlog(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.backlog.add(batch(7))
    await h.backlog.spill_all()
    assert h.backlog.rows_buffered == 0 and h.backlog.rows_spilled == 7
    again = Harness(tmp_path)
    assert again.backlog.load_spill_files() == 1
    await again.backlog.write_next(again.write)
    assert [len(b) for b in again.written] == [7] and again.backlog.idle()


async def test_an_unreadable_spill_file_is_set_aside(tmp_path: Path) -> None:
    good = write_spill_file(tmp_path, "t", batch(2), 1)
    bad = tmp_path / "t.00000000000000000000.000000.3.spill"  # sorts first
    bad.write_bytes(b"\xc1 not msgpack")
    h = Harness(tmp_path)
    assert h.backlog.load_spill_files() == 2
    await h.backlog.write_next(h.write)
    assert bad.with_suffix(".bad").exists() and h.written == []
    await h.backlog.write_next(h.write)
    assert [len(b) for b in h.written] == [2] and not good.exists()


async def test_spill_all_spills_the_batch_being_written(tmp_path: Path) -> None:
    """A write that hangs (flush timed out) is spilled too; if it then fails it is not queued
    again (the spill file has it), and a new backlog replays it."""
    h = Harness(tmp_path / "spill", batch_rows=100)
    h.backlog.add(batch(40, "A"))
    started, release = asyncio.Event(), asyncio.Event()

    async def hanging(quotes: Sequence[Quote]) -> None:
        started.set()
        await release.wait()
        raise ConnectionResetError("died mid-COPY")

    writing = asyncio.create_task(h.backlog.write_next(hanging))
    await asyncio.wait_for(started.wait(), 1)
    h.backlog.add(batch(10, "B"))
    await h.backlog.spill_all()
    assert sum(int(p.name.rsplit(".", 2)[-2]) for p in spill_paths(tmp_path / "spill", "t")) == 50
    assert h.backlog.durable()
    release.set()
    with pytest.raises(ConnectionResetError):
        await writing
    assert h.backlog.rows_queued == 0  # not queued again: it is in a spill file
    again = Harness(tmp_path / "spill")
    assert again.backlog.load_spill_files() == 2
    while again.backlog.has_work():
        await again.backlog.write_next(again.write)
    assert sorted(q.symbol for b in again.written for q in b) == sorted(
        [f"A{i}" for i in range(40)] + [f"B{i}" for i in range(10)]
    )


async def test_rows_submitted_during_spill_all_are_kept_not_called_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A flush timeout spills while the engine keeps submitting: what arrives during the spill
    stays queued for the writer (not durable yet) and is no ``quotes_lost`` (it was logged as
    lost, falsely, during a soak's PostgreSQL outage)."""
    h = Harness(tmp_path)
    h.backlog.add(batch(7, "A"))
    asyncio.get_running_loop().call_soon(h.backlog.add, batch(3, "B"))  # during the spill
    with caplog.at_level(logging.ERROR, logger="engine.sinks.store.backlog"):
        await h.backlog.spill_all()
    assert "quotes_lost" not in [r.getMessage() for r in caplog.records]
    assert h.backlog.rows_spilled == 7 and h.backlog.rows_queued == 3
    assert not h.backlog.durable()
    await h.backlog.write_next(h.write)
    assert [len(b) for b in h.written] == [7]  # the spill file first, then the late rows
    await h.backlog.write_next(h.write)
    assert [len(b) for b in h.written] == [7, 3] and h.backlog.idle()
