"""Spill files: quotes PostgreSQL could not take yet, kept on disk until they are written.

One file per spill, named ``<table>.<ns>.<seq>.<rows>.spill`` so the names sort by creation time
and carry their row count. The content is msgpack (:class:`SpillDoc`), written to a temporary
name, fsync'd, renamed, and the directory fsync'd: a file either is complete or does not exist.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec

from engine.quote import Quote
from engine.sinks.durable import fsync_dir

SPILL_VERSION: Final = 1


class SpillDoc(msgspec.Struct, frozen=True):
    version: int
    table: str
    quotes: list[Quote]


def spill_paths(spill_dir: Path, table: str) -> list[Path]:
    """Spill files of ``table``, oldest first (names sort by creation time)."""
    if not spill_dir.is_dir():
        return []
    return sorted(spill_dir.glob(f"{table}.*.spill"))


def spill_rows(path: Path) -> int:
    """Row count encoded in a spill file's name (``<table>.<ns>.<seq>.<rows>.spill``)."""
    try:
        return int(path.name.rsplit(".", 2)[-2])
    except (IndexError, ValueError):
        return 0


def write_spill_file(spill_dir: Path, table: str, quotes: Sequence[Quote], seq: int) -> Path:
    """Durably write ``quotes`` (blocking: call it in a worker thread)."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    final = spill_dir / f"{table}.{time.time_ns():020d}.{seq:06d}.{len(quotes)}.spill"
    tmp = final.with_suffix(".tmp")
    data = msgspec.msgpack.encode(SpillDoc(SPILL_VERSION, table, list(quotes)))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.rename(final)
    fsync_dir(spill_dir)
    return final


def read_spill_file(path: Path) -> list[Quote]:
    doc = msgspec.msgpack.decode(path.read_bytes(), type=SpillDoc)
    return doc.quotes


def remove_spill_file(path: Path) -> None:
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)
