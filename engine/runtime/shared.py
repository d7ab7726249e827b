"""What the supervisor shares with its children: the rings, the last-seen table, the Yahoo guard,
and the shard assignments built from the symbol universe.

The shared memory outlives every child: a restarted worker writes on into its ring, a restarted
publisher drains what the rings still hold. A new universe (a SIGHUP reload) gets a new last-seen
table carrying over the rows of the symbols both universes hold; the old table is unlinked at once
(a worker still writing into it keeps its own mapping until it takes the new assignment), so
reloads do not pile up segments in /dev/shm.

The rings must fit the shared-memory filesystem: mapped beyond its free space, a segment is
sparse, and the first write to a page that has no room kills the process with SIGBUS. So the
space they need is checked against the filesystem's free space at start (:func:`check_shm`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Final

from engine.config import Config
from engine.errors import ConfigError
from engine.ringbuf import LastSeenTable, Ring, segment_size
from engine.runtime import ipc
from engine.runtime.identity import Identity, seed
from engine.source.guard import YahooGuard, policies_from
from engine.source.shards import assign_shards, build_shards
from engine.source.universe import Universe

SHM_DIR: Final = "/dev/shm"  # noqa: S108 - read (statvfs) only, never written here
"""Where POSIX shared memory (``multiprocessing.shared_memory``) lives on Linux."""
SHM_SLACK_BYTES: Final = 1 << 20
"""Room kept for the Yahoo guard's state and the filesystem's own overhead."""
_MIB: Final = 1 << 20


def shm_needed(n_workers: int, ring_capacity: int, n_symbols: int) -> int:
    """Bytes of shared memory the engine maps: every ring, the last-seen table twice (a reload
    holds the old and the new one for a moment) and :data:`SHM_SLACK_BYTES`."""
    table = LastSeenTable.nbytes(n_symbols)
    return n_workers * segment_size(ring_capacity) + 2 * table + SHM_SLACK_BYTES


def check_shm(
    needed: int,
    shm_dir: str = SHM_DIR,
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
) -> None:
    """Raise :class:`ConfigError` when ``needed`` bytes do not fit the free space of
    ``shm_dir`` (the message names the settings and the fix)."""
    st = statvfs(shm_dir)
    free = st.f_bavail * st.f_frsize
    if needed <= free:
        return
    raise ConfigError(
        f"{shm_dir} has {free / _MIB:.0f} MiB free but the rings and tables need "
        f"{needed / _MIB:.0f} MiB (workers x workers.ring_capacity records): give the engine "
        "more shared memory (docker run --shm-size, compose shm_size, e.g. 512m) or lower "
        "workers.ring_capacity or workers.count",
        key="workers.ring_capacity",
    )


class SharedState:
    """The rings (one per worker, with its notify pipe), the last-seen table and the guard."""

    def __init__(self, config: Config, n_workers: int, *, shm_dir: str = SHM_DIR) -> None:
        self.config = config
        self.shm_dir = shm_dir
        self.n_workers = n_workers
        self.rings: list[Ring] = []
        self.notify: list[tuple[int, int]] = []
        """Per ring: the (read, write) ends of the pipe a worker wakes the publisher with."""
        self.table: LastSeenTable | None = None
        self._index: dict[str, int] = {}
        self.guard: YahooGuard | None = None
        self.lock_dir = ""
        self.assignments: list[ipc.Assign] = []
        """Per worker: the shards it owns in the current universe."""
        self.generation = 0

    def create(self, universe: Universe) -> None:
        """Create the rings, the notify pipes, the guard and the first assignments (after
        checking they fit the shared-memory filesystem: :func:`check_shm`)."""
        cap = self.config.workers.ring_capacity
        check_shm(shm_needed(self.n_workers, cap, len(universe.symbols)), self.shm_dir)
        for _ in range(self.n_workers):
            self.rings.append(Ring.create(cap))
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self.notify.append((r, w))
        self.assign(universe)
        self.lock_dir = tempfile.mkdtemp(prefix="ingestion-agent-")
        self.guard = YahooGuard.create(self.lock_dir, *policies_from(self.config.yahoo))

    def assign(self, universe: Universe) -> None:
        """A last-seen table and shard assignments for ``universe`` (a new generation)."""
        n_shards = self.config.workers.shards
        shards = build_shards(universe, n_shards)
        index = {s: i for i, s in enumerate(universe.symbols)}
        table = LastSeenTable.create(len(universe.symbols))
        if self.table is not None:  # carry over what the workers already wrote
            old_index = self._index
            for sym, i in index.items():
                j = old_index.get(sym)
                if j is not None:
                    table.times[i] = self.table.times[j]
                    table.volumes[i] = self.table.volumes[j]
                    table.ok_cycle[i] = self.table.ok_cycle[j]
            # unlinked now: a worker still writing into it keeps its own mapping until it takes
            # the new assignment, and nothing else attaches to it any more
            self.table.close()
        self.table = table
        self._index = index
        self.generation += 1
        owners = assign_shards(n_shards, self.n_workers)
        by_id = {sh.id: sh for sh in shards}
        self.assignments = [
            ipc.Assign(
                generation=self.generation,
                state_name=table.name,
                state_size=len(universe.symbols),
                shards=[
                    ipc.ShardAssignment(
                        shard=sid,
                        symbols=list(by_id[sid].symbols),
                        indices=[index[s] for s in by_id[sid].symbols],
                    )
                    for sid in owned
                    if sid in by_id
                ],
            )
            for owned in owners
        ]

    def restore(self, identities: dict[str, Identity]) -> int:
        """Seed the last-seen table with the last published identity per symbol (restored at
        start by :func:`engine.runtime.identity.restore`); how many symbols were seeded."""
        assert self.table is not None
        return seed(self.table, self._index, identities)

    def symbols_of(self, worker: int) -> int:
        """How many symbols ``worker`` owns."""
        return sum(len(s.symbols) for s in self.assignments[worker].shards)

    def requests_per_cycle(self) -> int:
        """Batch requests one whole cycle needs."""
        size = self.config.yahoo.batch_size
        return sum(-(-self.symbols_of(w) // size) for w in range(len(self.assignments)))

    def heads(self) -> dict[int, int]:
        """Every ring's head (what a cycle's records sit before once its workers are done)."""
        return {w: ring.head for w, ring in enumerate(self.rings)}

    def unpublished(self) -> int:
        return sum(r.occupancy() for r in self.rings)

    def release(self) -> None:
        if self.guard is not None:
            self.guard.close()
            shutil.rmtree(self.lock_dir, ignore_errors=True)
        for ring in self.rings:
            ring.close()
        if self.table is not None:
            self.table.close()
        for r, w in self.notify:
            for fd in (r, w):
                with contextlib.suppress(OSError):
                    os.close(fd)
