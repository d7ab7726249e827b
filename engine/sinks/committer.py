"""When a ring's records may be released, and when a cycle is fully published.

* :class:`Committer` moves a ring's ``tail`` only after what was taken from it is durable: every
  message of the chunk is in JetStream or the outbox (a drain hands a position over only after
  :meth:`~engine.sinks.delivery.Delivery.send` returned), *and* its quotes are in PostgreSQL or
  the store's fsync'd spill file (:meth:`~engine.sinks.store.QuoteStore.make_durable`). It
  batches the flushes, so a slow database delays the tail, never the publishing. A flush that
  reports the rows not durable (a spill failed) or raises releases nothing: the positions stay
  pending and are tried again after a backoff. If the process dies, its
  successor re-reads from the tail: at-least-once into JetStream and PostgreSQL, exactly-once in
  the stream (dedup by ``Nats-Msg-Id``) and in the table (primary key).
* :class:`CycleLedger` counts each cycle's outcomes (:class:`~engine.stats.PublishCounts`) and
  reports the cycle once every ring's tail has passed the position the supervisor sealed it at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from engine.observe import metrics
from engine.records import OutMessage
from engine.retry import backoff_s
from engine.runtime import ipc
from engine.sinks.cache import QuoteCache
from engine.sinks.store import QuoteStore
from engine.stats import Outcome, PublishCounts

log = logging.getLogger(__name__)

RETRY_BASE_S = 0.5
RETRY_CAP_S = 10.0
"""A commit whose rows did not become durable is tried again after a backoff between these."""


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
        self.failures = 0  # commits in a row whose rows did not become durable

    def taken(self, ring: int, position: int) -> None:
        """Everything of ``ring`` before ``position`` is in JetStream or the outbox."""
        self.pending[ring] = position
        self.wake.set()

    async def commit(self) -> bool:
        """Make what was taken durable in PostgreSQL (or its spill), then release it.

        Returns False (nothing released, the positions stay pending) if the store could not
        make the rows durable; if the store raises, the positions stay pending too.
        """
        batch, self.pending = self.pending, {}
        if batch and self.store is not None:
            try:
                durable = await self._make_durable(self.store)
            except BaseException:
                self._keep(batch)
                raise
            if not durable:
                self._keep(batch)
                return False
        if batch and self.cache is not None:
            metrics.record_cache_stats(self.cache.stats)
        for i, pos in batch.items():
            self.rings[i].commit(pos)
        self.ledger.check()
        return True

    async def _make_durable(self, store: QuoteStore) -> bool:
        t0 = time.perf_counter()
        result = await store.make_durable(self.flush_timeout_s)
        metrics.record_store_flush(time.perf_counter() - t0)
        metrics.record_store_stats(store.stats)
        if not result.durable:
            log.warning(
                "store_not_durable",
                extra={"result": result.value, "failures": self.failures + 1},
            )
        return result.durable

    def _keep(self, batch: dict[int, int]) -> None:
        """Put positions back as pending (a position taken since is further on: it wins)."""
        for i, pos in batch.items():
            self.pending[i] = max(pos, self.pending.get(i, pos))

    async def run(self, finished: Callable[[], bool]) -> None:
        """Commit whenever woken, and again after a backoff while the rows are not durable;
        return once ``finished()`` (no drain will hand anything over again) and nothing is
        pending."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            if await self.commit():
                self.failures = 0
            else:
                delay = backoff_s(self.failures, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S)
                self.failures += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay)
                self.wake.set()
            if finished() and not self.pending:
                return
