"""What the supervisor shares with its children: the rings, the last-seen table, the Yahoo guard,
and the shard assignments built from the symbol universe.

The shared memory outlives every child: a restarted worker writes on into its ring, a restarted
publisher drains what the rings still hold. A new universe (a SIGHUP reload) gets a new last-seen
table carrying over the rows of the symbols both universes hold; the old table stays mapped until
shutdown (a worker may still be writing into it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from engine.config import Config
from engine.ringbuf import LastSeenTable, Ring
from engine.runtime import ipc
from engine.source.guard import YahooGuard, policies_from
from engine.source.shards import assign_shards, build_shards
from engine.source.universe import Universe


class SharedState:
    """The rings (one per worker, with its notify pipe), the last-seen table and the guard."""

    def __init__(self, config: Config, n_workers: int) -> None:
        self.config = config
        self.n_workers = n_workers
        self.rings: list[Ring] = []
        self.notify: list[tuple[int, int]] = []
        """Per ring: the (read, write) ends of the pipe a worker wakes the publisher with."""
        self.table: LastSeenTable | None = None
        self._index: dict[str, int] = {}
        self.old_tables: list[LastSeenTable] = []
        self.guard: YahooGuard | None = None
        self.lock_dir = ""
        self.assignments: list[ipc.Assign] = []
        """Per worker: the shards it owns in the current universe."""
        self.generation = 0

    def create(self, universe: Universe) -> None:
        """Create the rings, the notify pipes, the guard and the first assignments."""
        cap = self.config.workers.ring_capacity
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
                    table.ok_cycle[i] = self.table.ok_cycle[j]
            self.old_tables.append(self.table)
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
        for t in [*self.old_tables, *([self.table] if self.table else [])]:
            t.close()
        for r, w in self.notify:
            for fd in (r, w):
                with contextlib.suppress(OSError):
                    os.close(fd)
