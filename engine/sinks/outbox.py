"""Durable local outbox for messages JetStream could not take (NATS unreachable).

While NATS is down the publisher keeps draining the shared-memory rings into this outbox, so
workers keep fetching and nothing is lost even if the whole engine then stops. When NATS is
back, the outbox is replayed oldest first; replays carry the original ``Nats-Msg-Id``, so a
message that did reach the stream before the outage is dropped by JetStream's deduplication
(within the duplicate window).

Order: once anything is in the outbox, new messages are appended behind it rather than
published directly, so per-symbol order is kept; direct publishing resumes when it is empty.

Format: one file per appended batch, ``<seq:012d>.msgpack`` (a msgpack list of
``[dlq, msg_id, payload, cycle]``), written to a temporary name, fsync'd, renamed, and the
directory fsync'd - a crash leaves either the whole batch or nothing. Bounded by ``max_bytes``:
when full, :meth:`has_room` is False and the publisher stops taking from the rings, which
pushes back on the workers (backpressure, not loss).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec

from engine.records import OutMessage
from engine.sinks.durable import fsync_dir as _fsync_dir

log = logging.getLogger(__name__)

SUFFIX: Final = ".msgpack"
_enc: Final = msgspec.msgpack.Encoder()
_dec: Final = msgspec.msgpack.Decoder(list[OutMessage])


class Outbox:
    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._segments: list[Path] = sorted(self.dir.glob(f"*{SUFFIX}"))
        self._bytes = sum(p.stat().st_size for p in self._segments)
        for tmp in self.dir.glob("*.tmp"):  # a crash mid-append: that batch was never accepted
            tmp.unlink(missing_ok=True)
        nums = [int(p.stem) for p in self._segments if p.stem.isdigit()]
        self._next = max(nums, default=0) + 1

    def __len__(self) -> int:
        """Segments waiting."""
        return len(self._segments)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def has_room(self) -> bool:
        return self._bytes < self.max_bytes

    def append(self, msgs: Sequence[OutMessage]) -> None:
        """Durably append ``msgs`` as one segment."""
        if not msgs:
            return
        data = _enc.encode(list(msgs))
        path = self.dir / f"{self._next:012d}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(self.dir)
        self._next += 1
        self._segments.append(path)
        self._bytes += len(data)

    def oldest(self) -> tuple[Path, list[OutMessage]] | None:
        """The oldest segment and its messages; a corrupt segment is set aside and skipped."""
        while self._segments:
            path = self._segments[0]
            try:
                return path, _dec.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError) as exc:
                bad = path.with_suffix(".corrupt")
                log.error(
                    "outbox_segment_corrupt",
                    extra={"path": str(path), "error_kind": type(exc).__name__, "error": str(exc)},
                )
                with contextlib.suppress(OSError):
                    path.rename(bad)
                self._forget(path)
        return None

    def remove(self, path: Path) -> None:
        """Drop a segment whose messages are all acknowledged."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _fsync_dir(self.dir)
        self._forget(path)

    def _forget(self, path: Path) -> None:
        if path in self._segments:
            self._segments.remove(path)
        self._bytes = sum(p.stat().st_size for p in self._segments if p.exists())

    def count_messages(self) -> int:
        """Messages waiting (reads every segment: for status output, not the hot path)."""
        n = 0
        for p in self._segments:
            with contextlib.suppress(OSError, msgspec.DecodeError):
                n += len(_dec.decode(p.read_bytes()))
        return n
