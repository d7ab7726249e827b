"""A worker's sink: validate, de-duplicate and append quotes to the worker's own ring."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from engine.observe import metrics
from engine.quote import Rejection, RejectReason, Rules, validate
from engine.records import to_records
from engine.ringbuf import LastSeenTable, Ring
from engine.source.decode import QuoteBatch
from engine.stats import FetchCounts

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RingSink:
    """Validate, de-duplicate and append quotes to this worker's ring (a ``QuoteSink``)."""

    ring: Ring
    notify_fd: int
    rules: Rules
    _: KW_ONLY
    skip_unchanged: bool
    worker: int = 0
    clock: Callable[[], float] = time.time
    last_seen: LastSeenTable | None = None
    """Last market time written and last cycle with a valid quote, per symbol (shared)."""
    index_of: dict[str, int] = field(default_factory=dict)
    """Symbol -> row of :attr:`last_seen`."""
    full_waits: int = 0

    def _on_full(self) -> None:
        self.full_waits += 1
        metrics.record_ring_full(self.worker)

    def notify(self) -> None:
        # a full pipe already holds wake-ups: the publisher will look anyway
        with contextlib.suppress(BlockingIOError):
            os.write(self.notify_fd, b"\x01")

    async def accept(self, source: int, cycle: int, got: QuoteBatch, counts: FetchCounts) -> None:
        now = self.clock()
        table = self.last_seen
        times = table.times if table is not None else None
        ok_cycle = table.ok_cycle if table is not None else None
        valid = []
        unchanged = []
        written: list[tuple[int, int]] = []
        rejections: list[Rejection] = []
        for yq in got.quotes:
            q = validate(yq, now_s=now, rules=self.rules)
            if isinstance(q, Rejection):
                rejections.append(q)
                continue
            counts.regular += q.market_state == "REGULAR"
            idx = self.index_of.get(q.symbol)
            if idx is not None and times is not None:
                assert ok_cycle is not None
                ok_cycle[idx] = cycle
                if self.skip_unchanged and times[idx] == q.market_time:
                    unchanged.append(q)
                    continue
                written.append((idx, q.market_time))
            valid.append(q)
            counts.stale += q.stale
        rejections.extend(
            Rejection(m.symbol, RejectReason.MALFORMED, m.detail) for m in got.malformed
        )
        for r in rejections:
            counts.reject(r.reason.label)
            # one line per rejection at DEBUG; the cycle summary counts them by reason and
            # every one is in the dead-letter stream with its detail
            log.debug(
                "quote_rejected",
                extra={"symbol": r.symbol, "reason": r.reason.label, "detail": r.detail},
            )
        counts.valid += len(valid) + len(unchanged)
        counts.unchanged += len(unchanged)
        recs = to_records(
            valid,
            rejections,
            cycle=cycle,
            source=source,
            ingest_time_ns=time.time_ns(),
            unchanged=unchanged,
        )
        if not len(recs):
            return
        await self.ring.write(recs, on_full=self._on_full)
        if times is not None:
            for idx, t in written:
                times[idx] = t
        self.notify()
