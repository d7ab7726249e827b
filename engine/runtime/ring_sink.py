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

import numpy as np
import numpy.typing as npt

from engine.observe import metrics
from engine.plausibility import HeldMoves
from engine.quote import Quote, Rejection, RejectReason, Rules, validate
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
        rules = self.rules
        valid: list[Quote] = []
        rejections: list[Rejection] = []
        held = self.held
        for yq in got.quotes:
            q = validate(yq, now_s=now, rules=rules, held=held.get(yq.symbol, cycle))
            if isinstance(q, Rejection):
                if q.reason is RejectReason.PRICE_UNCONFIRMED and q.price is not None:
                    held.hold(q.symbol, q.price, cycle)
                rejections.append(q)
                continue
            held.release(q.symbol)
            valid.append(q)
        counts.regular += sum(q.market_state == "REGULAR" for q in valid)
        unchanged, written = self._last_seen(valid, cycle)
        if unchanged:
            keep = set(map(id, unchanged))
            valid = [q for q in valid if id(q) not in keep]
        counts.stale += sum(q.stale for q in valid)
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
        table = self.last_seen
        if table is not None and written is not None:
            rows, times, volumes = written
            if lost:  # quarantined, not written: not the last written either
                ok = ~np.isin(rows, np.fromiter(lost, np.int64, len(lost)))
                rows, times, volumes = rows[ok], times[ok], volumes[ok]
            table.times[rows] = times
            table.volumes[rows] = volumes
        self.notify()

    def _last_seen(
        self, valid: list[Quote], cycle: int
    ) -> tuple[list[Quote], tuple[npt.NDArray[np.int64], ...] | None]:
        """Mark ``cycle`` as the symbols' last with a valid quote; the quotes whose identity
        (market time and volume) is the last written (unchanged), and the (rows, market times,
        volumes) the others will write. One vectorised pass over the shared table per batch."""
        table = self.last_seen
        if table is None or not valid:
            return [], None
        index_of = self.index_of
        n = len(valid)
        rows = np.fromiter((index_of.get(q.symbol, -1) for q in valid), np.int64, n)
        known = rows >= 0  # a symbol outside the universe (not asked for) has no row
        times = np.fromiter((q.market_time for q in valid), np.int64, n)[known]
        volumes = np.fromiter((q.volume for q in valid), np.int64, n)[known]
        rows = rows[known]
        table.ok_cycle[rows] = cycle
        unchanged: list[Quote] = []
        if self.skip_unchanged and len(rows):
            same = (table.times[rows] == times) & (table.volumes[rows] == volumes)
            if same.any():
                kept = np.flatnonzero(known)[same].tolist()
                unchanged = [valid[i] for i in kept]
                new = ~same
                rows, times, volumes = rows[new], times[new], volumes[new]
        return unchanged, (rows, times, volumes)

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
