"""Statistics: the one type every stage counts a cycle in, the publish outcome, and the
sinks' running figures.

A worker counts its share of a cycle in a :class:`FetchCounts`, the publisher counts what became
of the cycle's messages in a :class:`PublishCounts` (one :class:`Outcome` per message), and the
supervisor adds them up in a :class:`CycleStats` - the figures of the ``run --once`` summary line,
the cycle log line, the metrics and ``/status``. The same Structs travel in the control messages
(:mod:`engine.runtime.ipc`), so a counter is declared once, here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

StoreMode = Literal["native", "timescale"]
"""How the quote table is partitioned: native daily partitions, or a TimescaleDB hypertable."""


class Outcome(enum.IntEnum):
    """What became of one message handed to JetStream."""

    PUBLISHED = 0
    """Stored in the stream (a new ``Nats-Msg-Id``)."""
    DUPLICATE = 1
    """Acknowledged as a duplicate: JetStream already had that ``Nats-Msg-Id``."""
    FAILED = 2
    """Not acknowledged in time (NATS unreachable): goes to the outbox."""
    REJECTED = 3
    """JetStream refused the message itself: goes to the DLQ as unpublishable."""
    OUTBOXED = 4
    """Written to the durable outbox, to be replayed when NATS is back."""


def _add(a: dict[str, int], b: dict[str, int]) -> None:
    for k, v in b.items():
        a[k] = a.get(k, 0) + v


class FetchCounts(msgspec.Struct):
    """A worker's (or, summed, the whole engine's) fetch side of one cycle."""

    requested: int = 0
    fetched: int = 0
    """Quotes Yahoo returned (valid + rejected)."""
    valid: int = 0
    unchanged: int = 0
    """Valid but identical to the last quote written (not re-published)."""
    stale: int = 0
    """Valid, older than 5 min outside regular hours."""
    regular: int = 0
    """Valid quotes whose marketState is REGULAR (the session, as Yahoo says)."""
    missing: int = 0
    """Requested but absent from Yahoo's answer."""
    failed: int = 0
    """Symbols of batches that failed after retries."""
    requests: int = 0
    failed_requests: int = 0
    """Batch requests that failed after their retries (split or not)."""
    attempts: int = 0
    rejected: dict[str, int] = msgspec.field(default_factory=dict)
    """Rejection reason -> quotes."""
    errors: dict[str, int] = msgspec.field(default_factory=dict)
    """Error kind -> failed batches."""

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + n

    def error(self, kind: str, n: int = 1) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + n

    def add(self, other: FetchCounts) -> None:
        """Add ``other`` into these counts (the supervisor summing its workers)."""
        for name in _FETCH_INTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        _add(self.rejected, other.rejected)
        _add(self.errors, other.errors)


_FETCH_INTS = tuple(f for f in FetchCounts.__struct_fields__ if f not in ("rejected", "errors"))


class PublishCounts(msgspec.Struct):
    """The publisher's side of one cycle: what became of its messages."""

    published: int = 0
    """New messages stored in the quote stream."""
    deduplicated: int = 0
    """Acknowledged as duplicates by JetStream."""
    failed: int = 0
    """Refused by JetStream itself (dead-lettered as unpublishable)."""
    dlq: int = 0
    """Dead letters stored."""
    outboxed: int = 0
    """NATS unreachable: waiting in the durable outbox."""

    def count(self, outcome: Outcome, n: int = 1) -> None:
        """Count ``n`` quote messages with ``outcome``."""
        if outcome is Outcome.PUBLISHED:
            self.published += n
        elif outcome is Outcome.DUPLICATE:
            self.deduplicated += n
        elif outcome is Outcome.REJECTED:
            self.failed += n
        elif outcome is Outcome.OUTBOXED:
            self.outboxed += n
        else:
            raise ValueError(f"{outcome!r} is not final: outbox the message first")


class CycleStats(msgspec.Struct):
    """One whole cycle, as the supervisor reports it."""

    cycle: int
    fetch: FetchCounts = msgspec.field(default_factory=FetchCounts)
    publish: PublishCounts = msgspec.field(default_factory=PublishCounts)
    fetch_seconds: float = 0.0
    seconds: float = 0.0
    rate_rps: float = 0.0
    """The shared rate limiter's rate when the cycle completed (requests per second)."""
    rate_headroom: float = 0.0
    """Per-cycle request budget over the requests a cycle needs, minus one."""
    breaker: str = "CLOSED"
    """The circuit breaker's state name (``engine.source.breaker.BreakerState``)."""

    def fields(self) -> dict[str, Any]:
        """Every figure under one flat name (the ``cycle_completed`` log line's fields)."""
        p = self.publish
        return {
            "cycle": self.cycle,
            **msgspec.structs.asdict(self.fetch),
            "published": p.published,
            "deduplicated": p.deduplicated,
            "publish_failed": p.failed,
            "dlq": p.dlq,
            "outboxed": p.outboxed,
            "fetch_seconds": self.fetch_seconds,
            "seconds": self.seconds,
            "rate_rps": self.rate_rps,
            "rate_headroom": self.rate_headroom,
            "breaker": self.breaker,
        }

    @property
    def ok(self) -> bool:
        """Everything requested was fetched, and everything fetched is in the stream."""
        f, p = self.fetch, self.publish
        return f.failed == 0 and p.failed == 0 and p.outboxed == 0 and f.requested > 0

    def line(self) -> str:
        """The one-line summary (``run --once`` prints it; the cycle log line carries it)."""
        f, p = self.fetch, self.publish
        rej = sum(f.rejected.values())
        reasons = ",".join(f"{k}={v}" for k, v in sorted(f.rejected.items()))
        return (
            f"cycle={self.cycle} requested={f.requested} fetched={f.fetched} "
            f"valid={f.valid} rejected={rej}" + (f" ({reasons})" if reasons else "") + " "
            f"published={p.published} deduplicated={p.deduplicated + f.unchanged} "
            f"failed={f.failed + p.failed} outboxed={p.outboxed} "
            f"missing={f.missing} "
            f"seconds={self.seconds:.3f}"
        )


# -- the sinks' running statistics (what the publisher reports as metrics) --------------------


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A snapshot of the store's counters (``rows_*`` are quotes; totals since start)."""

    available: bool  # the last attempt to reach PostgreSQL succeeded
    mode: StoreMode | None  # None until the first successful migration
    rows_submitted: int
    rows_written: int  # new rows inserted
    rows_duplicate: int  # already stored (ON CONFLICT, or equal to the last stored quote)
    rows_expired: int  # older than the retention cutoff: not stored
    rows_rejected: int  # refused by PostgreSQL or unencodable (bad value): not stored
    rows_dropped: int  # lost: memory bound hit while spilling failed
    rows_buffered: int  # in memory now (queued + being written)
    rows_spilled: int  # on disk now, waiting to be written
    rows_spilled_total: int
    outages: int
    last_error_kind: str | None
    last_batch_rows: int
    last_batch_s: float | None


@dataclass(frozen=True, slots=True)
class CacheStats:
    available: bool
    keys_written: int
    keys_skipped_older: int  # Redis held a newer quote
    keys_unencodable: int  # symbol not valid UTF-8 (lone surrogate): never cached
    pending_symbols: int  # waiting to be written (during an outage: the refill)
    outages: int
    last_error_kind: str | None
    last_batch_keys: int
    last_batch_s: float | None
