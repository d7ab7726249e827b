"""A worker's sink: validate, de-duplicate and append quotes to the worker's own ring.

A price beyond ``validation.max_move`` of its own reference is rejected as ``price_unconfirmed``
and its price held (:class:`~engine.plausibility.HeldMoves`, bounded); the symbol's next read
that confirms it is published (:mod:`engine.plausibility`).

A quote that passed validation but does not fit a ring record is quarantined by
:func:`~engine.records.to_records` (an ``encoding_failed`` rejection row): counted as rejected
here, logged once per batch (``records_quarantined``) and in
``ingestion_records_quarantined_total{stage="ring"}``; the batch is written all the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from engine.observe import metrics
from engine.plausibility import HeldMoves
from engine.quote import Rejection, RejectReason, Rules, validate
from engine.records import to_records
from engine.ringbuf import KIND_REJECTION, LastSeenTable, Records, Ring
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
    """Last market time and volume written and last cycle with a valid quote, per symbol
    (shared)."""
    index_of: dict[str, int] = field(default_factory=dict)
    """Symbol -> row of :attr:`last_seen`."""
    full_waits: int = 0
    held: HeldMoves = field(default_factory=HeldMoves)
    """Out-of-band prices of this worker's symbols awaiting a confirming read."""

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
        volumes = table.volumes if table is not None else None
        ok_cycle = table.ok_cycle if table is not None else None
        valid = []
        unchanged = []
        written: list[tuple[int, int, int]] = []
        rejections: list[Rejection] = []
        held = self.held
        for yq in got.quotes:
            q = validate(yq, now_s=now, rules=self.rules, held=held.get(yq.symbol, cycle))
            if isinstance(q, Rejection):
                if q.reason is RejectReason.PRICE_UNCONFIRMED and q.price is not None:
                    held.hold(q.symbol, q.price, cycle)
                rejections.append(q)
                continue
            held.release(q.symbol)
            counts.regular += q.market_state == "REGULAR"
            idx = self.index_of.get(q.symbol)
            if idx is not None and times is not None:
                assert ok_cycle is not None and volumes is not None
                ok_cycle[idx] = cycle
                # unchanged = the same identity (market time and volume) as the last written
                if (
                    self.skip_unchanged
                    and times[idx] == q.market_time
                    and int(volumes[idx]) == q.volume
                ):
                    unchanged.append(q)
                    continue
                written.append((idx, q.market_time, q.volume))
            valid.append(q)
            counts.stale += q.stale
        rejections.extend(Rejection(m.symbol, m.reason, m.detail) for m in got.malformed)
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
        lost = self._quarantined(recs, len(rejections), counts)
        await self.ring.write(recs, on_full=self._on_full)
        if times is not None and volumes is not None:
            for idx, t, v in written:
                if idx not in lost:
                    times[idx] = t
                    volumes[idx] = v
        self.notify()

    def _quarantined(self, recs: Records, expected: int, counts: FetchCounts) -> set[int]:
        """Count the quotes :func:`to_records` turned into ``encoding_failed`` rows (rows of
        ``recs`` beyond the ``expected`` rejections); their :attr:`index_of` rows."""
        rows = recs[recs["kind"] == KIND_REJECTION]
        bad = rows[rows["reason"] == RejectReason.ENCODING_FAILED]
        if len(rows) == expected or not len(bad):
            return set()
        symbols = [b.decode("utf-8", "replace") for b in bad["symbol"].tolist()]
        counts.valid -= len(bad)
        for _ in symbols:
            counts.reject(RejectReason.ENCODING_FAILED.label)
        metrics.record_quarantined("ring", len(bad))
        log.warning(
            "records_quarantined",
            extra={"stage": "ring", "records": len(bad), "first_symbol": symbols[0],
                   "error": bad["detail"][0].decode("utf-8", "replace")},
        )  # fmt: skip
        return {i for s in symbols if (i := self.index_of.get(s)) is not None}
