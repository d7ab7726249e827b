"""Durable local outbox for messages JetStream could not take (NATS unreachable).

While NATS is down the publisher keeps draining the shared-memory rings into this outbox, so
workers keep fetching and nothing is lost even if the whole engine then stops. When NATS is
back, the outbox is replayed oldest first; replays carry the original ``Nats-Msg-Id``, so a
message that did reach the stream before the outage is dropped by JetStream's deduplication
within the duplicate window (past it, :mod:`engine.sinks.delivery` checks the stream first).

Order: once anything is in the outbox, new messages are appended behind it rather than
published directly, so per-symbol order is kept; direct publishing resumes when it is empty.

Format: one file per appended batch, ``<seq:012d>.msgpack``: a msgpack map ``{since, msgs}``
(:class:`Segment`; ``msgs`` a list of ``[dlq, msg_id, payload, cycle, subject]``, ``since`` the
wall-clock time from which any of them may have reached JetStream), or, from older versions, the
bare list. Every byte is written to a temporary name (short writes continued), fsync'd, renamed,
and the directory fsync'd - a crash or a full disk leaves either the whole batch or nothing: a
failed write removes the temporary file and raises :class:`OutboxWriteError`, and the caller
keeps the batch (in the ring). Bounded by ``max_bytes``: when full, :meth:`has_room` is False and
the publisher stops taking from the rings, which pushes back on the workers (backpressure, not
loss).

Reading and removing segments (:meth:`oldest`, :meth:`remove`) run in a worker thread, and the
index is a deque with each segment's size: replaying n segments is O(n) and leaves the event loop
free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NamedTuple

import msgspec

from engine.records import OutMessage
from engine.sinks.durable import fsync_dir as _fsync_dir

log = logging.getLogger(__name__)

SUFFIX: Final = ".msgpack"


class Segment(msgspec.Struct, frozen=True):
    """One outbox file: its messages and the earliest time any of them may be in JetStream."""

    since: float
    msgs: list[OutMessage]


_enc: Final = msgspec.msgpack.Encoder()
_dec: Final = msgspec.msgpack.Decoder(Segment | list[OutMessage])


class Pending(NamedTuple):
    """The oldest segment waiting: its file, its messages, its :attr:`Segment.since`."""

    path: Path
    msgs: list[OutMessage]
    since: float


class OutboxWriteError(Exception):
    """A segment could not be written whole (disk full, I/O error): nothing of it was kept."""


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a write may be short on a nearly full disk);
    the write that finds no room raises ``OSError`` (ENOSPC)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError("short write: no progress")
        view = view[n:]


def _read(path: Path) -> Segment:
    got = _dec.decode(path.read_bytes())
    if isinstance(got, Segment):
        return got
    return Segment(since=path.stat().st_mtime, msgs=got)  # older format: no since recorded


class Outbox:
    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        for tmp in self.dir.glob("*.tmp"):  # a crash mid-append: that batch was never accepted
            tmp.unlink(missing_ok=True)
        paths = sorted(self.dir.glob(f"*{SUFFIX}"))
        self._segments: deque[tuple[Path, int]] = deque((p, p.stat().st_size) for p in paths)
        self._bytes = sum(size for _, size in self._segments)
        nums = [int(p.stem) for p in paths if p.stem.isdigit()]
        self._next = max(nums, default=0) + 1

    def __len__(self) -> int:
        """Segments waiting."""
        return len(self._segments)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def has_room(self) -> bool:
        return self._bytes < self.max_bytes

    def append(self, msgs: Sequence[OutMessage], *, since: float | None = None) -> None:
        """Durably append ``msgs`` as one segment, all or nothing (:class:`OutboxWriteError`).

        ``since``: the wall-clock time they were first handed to JetStream (default now)."""
        if not msgs:
            return
        seg = Segment(since=time.time() if since is None else since, msgs=list(msgs))
        data = _enc.encode(seg)
        path = self.dir / f"{self._next:012d}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(self.dir)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise OutboxWriteError(f"cannot write outbox segment {path.name}: {exc}") from exc
        self._next += 1
        self._segments.append((path, len(data)))
        self._bytes += len(data)

    async def oldest(self) -> Pending | None:
        """The oldest segment (read in a thread); a corrupt segment is set aside and skipped."""
        while self._segments:
            path = self._segments[0][0]
            try:
                seg = await asyncio.to_thread(_read, path)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.error(
                    "outbox_segment_corrupt",
                    extra={"path": str(path), "error_kind": type(exc).__name__, "error": str(exc)},
                )
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".corrupt"))
                self._forget(path)
                continue
            return Pending(path, seg.msgs, seg.since)
        return None

    async def remove(self, path: Path) -> None:
        """Drop a segment whose messages are all acknowledged (unlinked in a thread)."""

        def unlink() -> None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            _fsync_dir(self.dir)

        await asyncio.to_thread(unlink)
        self._forget(path)

    def _forget(self, path: Path) -> None:
        if self._segments and self._segments[0][0] == path:  # the usual case: O(1)
            _, size = self._segments.popleft()
        else:
            found = next((s for s in self._segments if s[0] == path), None)
            if found is None:
                return
            self._segments.remove(found)
            size = found[1]
        self._bytes = max(0, self._bytes - size)

    def count_messages(self) -> int:
        """Messages waiting (reads every segment: for status output, not the hot path)."""
        n = 0
        for p, _ in self._segments:
            with contextlib.suppress(OSError, msgspec.DecodeError, msgspec.ValidationError):
                n += len(_read(p).msgs)
        return n
