"""The shared-memory ring: ordering, wrap-around, backpressure, crash-safe commit, processes."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest

from engine.errors import RingError
from engine.ringbuf import RECORD_DTYPE, LastSeenTable, Ring


def batch(start: int, n: int) -> np.ndarray:
    b = np.zeros(n, dtype=RECORD_DTYPE)
    b["volume"] = np.arange(start, start + n)
    b["symbol"] = [f"S{i}".encode() for i in range(start, start + n)]
    return b


@pytest.fixture
def ring():
    r = Ring.create(1024)
    yield r
    r.close()


class TestRing:
    def test_capacity_rounds_up_to_power_of_two(self) -> None:
        """A requested capacity becomes the next power of two."""
        r = Ring.create(1000)
        try:
            assert r.capacity == 1024
        finally:
            r.close()

    def test_fifo_and_seq(self, ring: Ring) -> None:
        """Records come out in the order written, stamped with seq = position + 1."""
        assert ring.try_write(batch(0, 10))
        out = ring.read(0, 100)
        assert list(out["volume"]) == list(range(10))
        assert list(out["seq"]) == list(range(1, 11))

    def test_wrap_around(self, ring: Ring) -> None:
        """Writes and reads that cross the end of the buffer keep every record intact."""
        pos = 0
        for round_ in range(5):
            assert ring.try_write(batch(pos, 700))
            out = ring.read(pos, 700)
            assert list(out["volume"]) == list(range(pos, pos + 700)), round_
            pos += 700
            ring.commit(pos)
        assert ring.head == ring.tail == 3500

    def test_full_ring_refuses_without_partial_write(self, ring: Ring) -> None:
        """A batch that does not fit writes nothing and reports False (no drop, no overwrite)."""
        assert ring.try_write(batch(0, 1000))
        assert not ring.try_write(batch(1000, 100))
        assert ring.head == 1000
        assert list(ring.read(0, 2000)["volume"]) == list(range(1000))

    def test_read_does_not_consume_until_commit(self, ring: Ring) -> None:
        """Reading leaves records in place; only commit frees them (a crashed reader re-reads)."""
        ring.try_write(batch(0, 1024))
        ring.read(0, 1024)
        assert not ring.try_write(batch(0, 1))
        ring.commit(512)
        assert ring.try_write(batch(1024, 512))

    def test_commit_bounds(self, ring: Ring) -> None:
        """Committing past head or behind tail is refused."""
        ring.try_write(batch(0, 4))
        with pytest.raises(RingError):
            ring.commit(5)
        ring.commit(4)
        with pytest.raises(RingError):
            ring.commit(3)

    def test_oversized_batch(self, ring: Ring) -> None:
        """A single batch larger than the ring is an error, not a hang."""
        with pytest.raises(RingError):
            ring.try_write(batch(0, 2048))

    async def test_write_waits_for_space(self, ring: Ring) -> None:
        """The async writer blocks while full and completes once the consumer commits."""
        ring.try_write(batch(0, 1024))
        waits = 0

        def on_full() -> None:
            nonlocal waits
            waits += 1

        writer = asyncio.create_task(ring.write(batch(1024, 100), on_full=on_full))
        await asyncio.sleep(0.02)
        assert not writer.done() and waits > 0
        ring.commit(200)
        await asyncio.wait_for(writer, 2)
        assert ring.head == 1124

    def test_torn_range_is_not_returned(self, ring: Ring) -> None:
        """A record whose seq does not match its position is never handed out."""
        ring.try_write(batch(0, 10))
        ring.records["seq"][5] = 0  # simulate a store not yet visible
        assert len(ring.read(0, 10)) == 0
        ring.records["seq"][5] = 6
        assert len(ring.read(0, 10)) == 10

    def test_attach_by_name_sees_same_data(self, ring: Ring) -> None:
        """Another mapping of the segment sees the same records and indices."""
        ring.try_write(batch(0, 3))
        other = Ring.attach(ring.name)
        try:
            assert other.head == 3
            assert list(other.read(0, 3)["volume"]) == [0, 1, 2]
        finally:
            other.close()

    def test_close_is_idempotent(self) -> None:
        """Closing twice is harmless and the owner unlinks the segment."""
        r = Ring.create(1024)
        name = r.name
        r.close()
        r.close()
        with pytest.raises(RingError):
            Ring.attach(name)


def _producer(name: str, total: int, seed: int) -> None:
    ring = Ring.attach(name)
    rng = np.random.default_rng(seed)
    pos = 0

    async def go() -> None:
        nonlocal pos
        while pos < total:
            n = int(min(total - pos, rng.integers(1, 300)))
            await ring.write(batch(pos, n), poll_s=0.0005)
            pos += n

    asyncio.run(go())
    ring.close()
    os._exit(0)


class TestRingAcrossProcesses:
    def test_concurrent_producer_consumer(self) -> None:
        """A producer process and this consumer move 200k records with none lost or reordered."""
        ring = Ring.create(1024)
        total = 200_000
        proc = mp.get_context("fork").Process(target=_producer, args=(ring.name, total, 7))
        proc.start()
        try:
            pos = 0
            seen = np.empty(total, dtype=np.int64)
            while pos < total:
                out = ring.read(pos, 333)
                if len(out) == 0:
                    continue
                seen[pos : pos + len(out)] = out["volume"]
                pos += len(out)
                ring.commit(pos)
            proc.join(10)
            assert proc.exitcode == 0
            assert np.array_equal(seen, np.arange(total))
        finally:
            if proc.is_alive():
                proc.kill()
            ring.close()


def _rss_shmem_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssShmem:"):
            return int(line.split()[1])
    raise AssertionError("no RssShmem in /proc/self/status")


class TestRingPopulate:
    def test_populate_makes_the_whole_mapping_resident_at_once(self) -> None:
        """A new mapping is resident only where touched; populate() faults every page in, so
        the process's RSS does not creep up by the ring's size as it wraps (soak: +10 % RSS)."""
        ring = Ring.create(1 << 16)
        try:
            other = Ring.attach(ring.name)  # a fresh mapping, like a forked child's first use
            before = _rss_shmem_kib()
            other.populate()
            grown = _rss_shmem_kib() - before
            size_kib = (other.records.nbytes + 64) // 1024
            assert grown >= 0.95 * size_kib, (grown, size_kib)
            other.populate()  # idempotent: nothing more to fault in
            assert _rss_shmem_kib() - before <= grown + 64
            other.close()
        finally:
            ring.close()


class TestLastSeenTable:
    def test_shared_between_mappings(self) -> None:
        """Values written through one mapping are visible through another; owner unlinks."""
        t = LastSeenTable.create(10)
        try:
            other = LastSeenTable.attach(t.name, 10)
            t.times[3] = 1700000000
            assert other.times[3] == 1700000000
            other.close()
        finally:
            t.close()
