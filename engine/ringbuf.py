"""Shared-memory rings of fixed-size quote records (numpy over ``multiprocessing.shared_memory``).

Design: **one single-producer/single-consumer ring per worker**, all read by the one publisher.

Why SPSC per worker rather than one MPSC ring: with one writer per ring, the write path needs no
lock and no atomic read-modify-write (Python has neither across processes without a semaphore,
and a semaphore held by a process that is SIGKILLed is never released). Each index has exactly one
writer: ``head`` is only written by the worker, ``tail`` only by the publisher, so a crash of either
leaves the other's index intact. The publisher fans in N rings, which costs it nothing: it is woken
by a notification pipe per ring and drains whichever rings have data.

Layout of one segment (all little-endian, 64-byte aligned)::

    [0:64)    header: magic u8, capacity u8, record_size u8, head u8, tail u8, generation u8
    [64:...)  capacity x RECORD (numpy structured dtype, ``RECORD_DTYPE``)

Protocol (positions are monotonically increasing u64; slot = position & (capacity - 1)):

* Producer: ``free = capacity - (head - tail)``; if the batch does not fit it *waits* (backpressure,
  never drops); it copies the records into the slots (each stamped ``seq = position + 1``), then
  stores ``head += n``.
* Consumer: reads ``head``; the records in ``[read, head)`` are complete. It may read ahead of
  ``tail`` (records stay in the ring until acknowledged); only :meth:`RingReader.commit` moves
  ``tail``, so a consumer that crashes before committing lets its successor re-read everything that
  was not acknowledged (at-least-once; JetStream's ``Nats-Msg-Id`` dedup makes it exactly-once in
  the stream).

Never a torn record: the record copy is sequenced before the ``head`` store (two separate C calls
from the interpreter, so the compiler cannot reorder them, and x86-64's TSO memory model keeps
stores in program order, as seen by another core). As a second line of defence every record carries
``seq`` and the consumer checks the whole range it reads, vectorised; a mismatch (only possible on
weakly-ordered CPUs or memory corruption) makes it re-read the range rather than publish garbage.

The shared memory belongs to the supervisor (it creates and finally unlinks every segment), so a
worker or publisher that dies loses nothing that was committed to the ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
from collections.abc import Callable
from multiprocessing import resource_tracker, shared_memory
from typing import Final

import numpy as np
import numpy.typing as npt

from engine.errors import RingError

MAGIC: Final = 0x494E47_52494E47  # "INGRING"
HEADER_BYTES: Final = 64
_H_MAGIC, _H_CAPACITY, _H_RECSIZE, _H_HEAD, _H_TAIL, _H_GENERATION = range(6)

KIND_QUOTE: Final = 1
KIND_REJECTION: Final = 2
KIND_UNCHANGED: Final = 3  # same market time as the last quote written: refreshes the cache only

SYMBOL_BYTES: Final = 24
DETAIL_BYTES: Final = 96

RECORD_DTYPE: Final = np.dtype(
    [
        ("seq", "<u8"),  # position + 1; 0 = never written
        ("ingest_time_ns", "<i8"),
        ("market_time", "<i8"),  # epoch s; 0 = unknown (rejections only)
        ("price", "<f8"),  # NaN = unknown (rejections only)
        ("volume", "<i8"),  # -1 = unknown (rejections only)
        ("change_percent", "<f8"),  # NaN = null
        ("cycle", "<u4"),
        ("kind", "u1"),  # KIND_QUOTE / KIND_REJECTION / KIND_UNCHANGED
        ("reason", "u1"),  # engine.quote.RejectReason for rejections, else 0
        ("market_state", "u1"),  # index into engine.quote.MARKET_STATES, 255 = unknown
        ("source", "u1"),  # index into engine.source.SOURCES
        ("flags", "u1"),  # bit 0: stale (outside regular hours)
        ("_pad", "u1"),
        ("correlation_id", "V16"),  # UUID4 bytes
        ("symbol", f"S{SYMBOL_BYTES}"),
        ("currency", "S8"),
        ("exchange", "S8"),
        ("detail", f"S{DETAIL_BYTES}"),  # rejection detail (truncated), else empty
    ],
    align=True,
)

Records = npt.NDArray[np.void]


def _attach(name: str) -> shared_memory.SharedMemory:
    """Map an existing segment without ever taking ownership of it.

    Python < 3.13 registers every mapped segment with the resource tracker, which unlinks what is
    still registered when its last user exits. A forked child shares the supervisor's tracker
    (already running here), where the owner's registration must stay; a process with a tracker of
    its own must unregister, or its tracker would unlink the owner's segment at exit.
    """
    shared_tracker = getattr(resource_tracker._resource_tracker, "_fd", None) is not None
    shm = shared_memory.SharedMemory(name=name, create=False)
    if not shared_tracker:
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    return shm


def _pow2(n: int) -> int:
    return 1 << (max(1, n) - 1).bit_length()


def _release(shm: shared_memory.SharedMemory, *, owner: bool) -> None:
    """Close this process's mapping (its numpy views already dropped); the owner also unlinks."""
    shm.close()
    if owner:
        with contextlib.suppress(FileNotFoundError):
            shm.unlink()


def segment_size(capacity: int) -> int:
    return HEADER_BYTES + _pow2(capacity) * RECORD_DTYPE.itemsize


class Ring:
    """One ring over a shared-memory segment. Create in the supervisor, attach in children.

    After ``fork`` the child can keep using the parent's :class:`Ring` object (the mapping is
    inherited); :meth:`attach` is for processes that only know the segment's name.
    """

    def __init__(self, shm: shared_memory.SharedMemory, *, owner: bool) -> None:
        self._shm = shm
        self._owner = owner
        self._closed = False
        buf = shm.buf
        assert buf is not None
        self._header = np.ndarray((8,), dtype="<u8", buffer=buf, offset=0)
        if self._header[_H_MAGIC] != MAGIC:
            raise RingError(f"shared memory {shm.name!r} is not an ingestion ring (bad magic)")
        self.capacity = int(self._header[_H_CAPACITY])
        if int(self._header[_H_RECSIZE]) != RECORD_DTYPE.itemsize:
            raise RingError(
                f"ring {shm.name!r} record size {int(self._header[_H_RECSIZE])} != "
                f"{RECORD_DTYPE.itemsize}: created by another engine version; restart the engine"
            )
        self._mask = self.capacity - 1
        self.records: Records = np.ndarray(
            (self.capacity,), dtype=RECORD_DTYPE, buffer=buf, offset=HEADER_BYTES
        )

    @classmethod
    def create(cls, capacity: int, name: str | None = None) -> Ring:
        cap = _pow2(capacity)
        shm = shared_memory.SharedMemory(name=name, create=True, size=segment_size(cap))
        buf = shm.buf
        assert buf is not None
        header = np.ndarray((8,), dtype="<u8", buffer=buf, offset=0)
        header[:] = 0
        header[_H_CAPACITY] = cap
        header[_H_RECSIZE] = RECORD_DTYPE.itemsize
        header[_H_MAGIC] = MAGIC
        return cls(shm, owner=True)

    @classmethod
    def attach(cls, name: str) -> Ring:
        try:
            shm = _attach(name)
        except FileNotFoundError:
            raise RingError(f"ring {name!r} does not exist (supervisor gone?)") from None
        return cls(shm, owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    def populate(self) -> None:
        """Fault every page of this process's mapping in now (one read per page).

        A forked child maps the ring lazily: without this, each page becomes resident the first
        time the ring wraps onto it, so the process's RSS creeps up by the ring's size (14 MiB
        at the default capacity) over the first minutes - a slow "leak" to anyone watching
        memory, and page faults on the hot path. Populated at start, the footprint is what it
        will stay (and a container memory limit is met at start, not minutes later).
        """
        buf = self._shm.buf
        assert buf is not None
        pages = np.frombuffer(buf, dtype=np.uint8)[:: mmap.PAGESIZE]
        int(pages.sum(dtype=np.uint64))

    @property
    def head(self) -> int:
        return int(self._header[_H_HEAD])

    @property
    def tail(self) -> int:
        return int(self._header[_H_TAIL])

    def occupancy(self) -> int:
        return self.head - self.tail

    def close(self) -> None:
        """Drop this process's mapping; the owner also unlinks the segment. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # numpy views must go before the mmap can close
        del self.records
        del self._header
        _release(self._shm, owner=self._owner)

    # -- producer side ---------------------------------------------------------------------------

    def try_write(self, batch: Records) -> bool:
        """Append ``batch`` if it fits entirely; return False (writing nothing) if it does not."""
        n = len(batch)
        if n == 0:
            return True
        if n > self.capacity:
            raise RingError(f"batch of {n} records exceeds ring capacity {self.capacity}")
        head = int(self._header[_H_HEAD])
        tail = int(self._header[_H_TAIL])
        if self.capacity - (head - tail) < n:
            return False
        start = head & self._mask
        first = min(n, self.capacity - start)
        seqs = np.arange(head + 1, head + n + 1, dtype="<u8")
        self.records[start : start + first] = batch[:first]
        self.records["seq"][start : start + first] = seqs[:first]
        if first < n:
            self.records[: n - first] = batch[first:]
            self.records["seq"][: n - first] = seqs[first:]
        self._header[_H_HEAD] = head + n  # publish: after the record stores
        return True

    async def write(
        self,
        batch: Records,
        *,
        poll_s: float = 0.002,
        on_full: Callable[[], None] | None = None,
    ) -> None:
        """Append ``batch``, waiting while the ring is full (backpressure, never a drop)."""
        # Large batches are written in pieces so a batch bigger than the free space still
        # makes progress as the consumer frees slots.
        step = max(1, self.capacity // 4)
        for i in range(0, len(batch), step):
            piece = batch[i : i + step]
            while not self.try_write(piece):
                if on_full is not None:
                    on_full()
                await asyncio.sleep(poll_s)

    # -- consumer side ---------------------------------------------------------------------------

    def read(self, start: int, max_n: int) -> Records:
        """Copy out up to ``max_n`` committed records from position ``start`` (>= tail)."""
        tail = int(self._header[_H_TAIL])
        if start < tail:
            raise RingError(f"read position {start} is behind tail {tail}")
        head = int(self._header[_H_HEAD])
        n = min(max_n, head - start)
        if n <= 0:
            return np.empty(0, dtype=RECORD_DTYPE)
        s = start & self._mask
        first = min(n, self.capacity - s)
        if first == n:
            out = self.records[s : s + n].copy()
        else:
            out = np.concatenate((self.records[s:], self.records[: n - first]))
        expected = np.arange(start + 1, start + n + 1, dtype="<u8")
        if not np.array_equal(out["seq"], expected):
            # Not yet visible (weak memory ordering) or corrupt: give the caller nothing now.
            return np.empty(0, dtype=RECORD_DTYPE)
        return out

    def commit(self, position: int) -> None:
        """Mark everything before ``position`` as consumed (acknowledged downstream)."""
        tail = int(self._header[_H_TAIL])
        head = int(self._header[_H_HEAD])
        if not tail <= position <= head:
            raise RingError(f"commit {position} outside [{tail}, {head}]")
        self._header[_H_TAIL] = position


class LastSeenTable:
    """Per universe index: the last market time written to a ring (:attr:`times`, int64 epoch s;
    0 = never) with its volume (:attr:`volumes`; a quote is unchanged only when both are equal)
    and the last cycle in which the symbol got a valid quote (:attr:`ok_cycle`;
    unchanged quotes count; 0 = never) - the data-quality input of :mod:`engine.observe.quality`.

    Lives in shared memory owned by the supervisor, so a restarted worker still knows which quotes
    it already wrote and does not re-publish unchanged quotes after JetStream's duplicate window.
    Each index is written by the one worker that owns its shard; the supervisor only reads.
    """

    def __init__(self, shm: shared_memory.SharedMemory, size: int, *, owner: bool) -> None:
        self._shm = shm
        self._owner = owner
        self._closed = False
        buf = shm.buf
        assert buf is not None
        self.times: npt.NDArray[np.int64] = np.ndarray((size,), dtype="<i8", buffer=buf)
        self.ok_cycle: npt.NDArray[np.int64] = np.ndarray(
            (size,), dtype="<i8", buffer=buf, offset=8 * size
        )
        self.volumes: npt.NDArray[np.int64] = np.ndarray(
            (size,), dtype="<i8", buffer=buf, offset=16 * size
        )

    @staticmethod
    def nbytes(size: int) -> int:
        """Bytes of shared memory a table of ``size`` rows maps."""
        return max(24, 24 * size)

    @classmethod
    def create(cls, size: int) -> LastSeenTable:
        shm = shared_memory.SharedMemory(create=True, size=cls.nbytes(size))
        table = cls(shm, size, owner=True)
        table.times[:] = 0
        table.ok_cycle[:] = 0
        table.volumes[:] = 0
        return table

    @classmethod
    def attach(cls, name: str, size: int) -> LastSeenTable:
        try:
            shm = _attach(name)
        except FileNotFoundError:
            raise RingError(f"last-seen table {name!r} does not exist") from None
        return cls(shm, size, owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        del self.times
        del self.ok_cycle
        del self.volumes
        _release(self._shm, owner=self._owner)
