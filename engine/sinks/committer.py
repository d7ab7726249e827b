"""When a ring's records may be released, and when a cycle is fully published.

* :class:`Committer` moves a ring's ``tail`` only after what was taken from it is durable: every
  message of the chunk is in JetStream or the outbox (a drain hands a position over only after
  :meth:`~engine.sinks.delivery.Delivery.send` returned), *and* its quotes are in PostgreSQL or
  the store's fsync'd spill file (:meth:`~engine.sinks.store.QuoteStore.flush`). It batches the
  flushes, so a slow database delays the tail, never the publishing. If the process dies, its
  successor re-reads from the tail: at-least-once into JetStream and PostgreSQL, exactly-once in
  the stream (dedup by ``Nats-Msg-Id``) and in the table (primary key).
* :class:`CycleLedger` counts each cycle's outcomes (:class:`~engine.stats.PublishCounts`) and
  reports the cycle once every ring's tail has passed the position the supervisor sealed it at.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from engine.observe import metrics
from engine.records import OutMessage
from engine.runtime import ipc
from engine.sinks.cache import QuoteCache
from engine.sinks.store import QuoteStore
from engine.stats import Outcome, PublishCounts


class Releasable(Protocol):
    """The part of a :class:`~engine.ringbuf.Ring` the committer uses."""

    @property
    def tail(self) -> int: ...

    def commit(self, position: int) -> None: ...


def cycle_published(cycle: int, counts: PublishCounts) -> ipc.CyclePublished:
    """The control message reporting ``cycle``'s publishing to the supervisor."""
    return ipc.CyclePublished(cycle=cycle, counts=counts)


class CycleLedger:
    """Per cycle: what became of its messages, and the ring positions it was sealed at."""

    def __init__(
        self, rings: Sequence[Releasable], report: Callable[[ipc.CyclePublished], None]
    ) -> None:
        self.rings = rings
        self.report = report
        self.counts: defaultdict[int, PublishCounts] = defaultdict(PublishCounts)
        self.seals: dict[int, Mapping[int, int]] = {}

    def account(self, msgs: Sequence[OutMessage], outcomes: Sequence[Outcome]) -> None:
        """Count the final outcome of each message in its cycle.

        A dead letter counts as ``dlq`` once stored (a duplicate of one is not counted again);
        refused or outboxed, it counts as any message would.
        """
        tally: Counter[tuple[int, bool, Outcome]] = Counter(
            (m.cycle, m.dlq, o) for m, o in zip(msgs, outcomes, strict=True)
        )
        for (cycle, dlq, outcome), n in tally.items():
            counts = self.counts[cycle]
            if dlq and outcome is Outcome.PUBLISHED:
                counts.dlq += n
            elif not (dlq and outcome is Outcome.DUPLICATE):
                counts.count(outcome, n)

    def seal(self, cycle: int, positions: Mapping[int, int]) -> None:
        """The supervisor sealed ``cycle``: its records end at ``positions`` (ring -> position)."""
        self.seals[cycle] = positions
        self.check()

    def check(self) -> None:
        """Report every sealed cycle whose records have all been released from the rings."""
        for cycle in sorted(self.seals):
            if all(self.rings[r].tail >= p for r, p in self.seals[cycle].items()):
                del self.seals[cycle]
                self.report(cycle_published(cycle, self.counts.pop(cycle, PublishCounts())))


class Committer:
    """Releases ring records once they are durable downstream (see the module docstring)."""

    def __init__(
        self,
        rings: Sequence[Releasable],
        ledger: CycleLedger,
        *,
        store: QuoteStore | None,
        cache: QuoteCache | None,
        flush_timeout_s: float,
    ) -> None:
        self.rings = rings
        self.ledger = ledger
        self.store = store
        self.cache = cache
        self.flush_timeout_s = flush_timeout_s
        self.pending: dict[int, int] = {}  # ring -> position taken, not yet durable
        self.wake = asyncio.Event()

    def taken(self, ring: int, position: int) -> None:
        """Everything of ``ring`` before ``position`` is in JetStream or the outbox."""
        self.pending[ring] = position
        self.wake.set()

    async def commit(self) -> None:
        """Make what was taken durable in PostgreSQL (or its spill), then release it."""
        batch, self.pending = self.pending, {}
        if batch and self.store is not None:
            t0 = time.perf_counter()
            await self.store.flush(self.flush_timeout_s)
            metrics.record_store_flush(time.perf_counter() - t0)
            metrics.record_store_stats(self.store.stats)
        if batch and self.cache is not None:
            metrics.record_cache_stats(self.cache.stats)
        for i, pos in batch.items():
            self.rings[i].commit(pos)
        self.ledger.check()

    async def run(self, finished: Callable[[], bool]) -> None:
        """Commit whenever woken; return once ``finished()`` (no drain will hand anything over
        again) and nothing is pending."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            await self.commit()
            if finished() and not self.pending:
                return
