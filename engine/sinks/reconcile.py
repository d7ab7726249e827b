"""At start: write to PostgreSQL what the quote stream holds and the table may have missed.

A ring's records are released only once their rows are committed or spilled (see
:mod:`engine.sinks.committer`), so a publisher that dies is replaced by one that re-reads them.
When the whole engine dies (container or host killed) the rings die with it: a batch JetStream
had acknowledged but PostgreSQL had not yet committed is then only in the stream. So each time
the publisher connects it reads the stream's tail back - from ``lookback_s`` before the last
message stored before this process published anything, up to that message - and inserts the
quotes the table lacks (:meth:`~engine.sinks.store.QuoteStore.insert_missing`; the primary key
skips the rest). If PostgreSQL cannot take them, they are handed to the store's backlog
(:meth:`~engine.sinks.store.QuoteStore.submit`), which buffers and spills them like any batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from engine.config import NatsSettings
from engine.deps.nats import ERRORS as NATS_ERRORS
from engine.errors import StoreError
from engine.observe import metrics
from engine.quote import Quote, QuoteMessage
from engine.sinks.store import QuoteStore

log = logging.getLogger(__name__)

BATCH: Final = 1000
"""Messages fetched, and rows inserted, per round."""
TAIL_TIMEOUT_S: Final = 5.0
"""Longest wait for the stream's tail (it delays the delivery's first use of JetStream)."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_decode = msgspec.json.Decoder(QuoteMessage).decode


@dataclass(frozen=True)
class Tail:
    """The stream's last message before this process published: its sequence and time."""

    last_seq: int
    last_time: float  # epoch seconds


@dataclass
class Reconciled:
    """What one reconcile did."""

    messages: int = 0
    inserted: int = 0
    submitted: int = 0  # handed to the store's backlog: PostgreSQL could not take them now
    undecodable: int = 0
    seconds: float = 0.0


async def stream_tail(js: Any, stream: str) -> Tail | None:
    """The last message of ``stream`` now; None if it is empty or cannot be read (logged)."""
    try:
        async with asyncio.timeout(TAIL_TIMEOUT_S):
            info = await js.stream_info(stream)
            if info.state.messages == 0:
                return None
            last = await js.get_msg(stream, info.state.last_seq)
    except (*NATS_ERRORS, TimeoutError) as exc:
        log.warning(
            "pg_reconcile_skipped",
            extra={"stream": stream, "error_kind": type(exc).__name__, "error": str(exc)},
        )
        return None
    when = last.time.timestamp() if last.time is not None else time.time()
    return Tail(last_seq=int(info.state.last_seq), last_time=when)


_SHARED_FIELDS: Final = tuple(f for f in Quote.__struct_fields__ if f != "ingest_time_ns")
"""The message carries every field of the quote as it is, except the ingest time (ISO text)."""


def to_quote(payload: bytes) -> Quote:
    """The quote a ``data.market.quote`` message carries (ValueError if it is not one)."""
    m = _decode(payload)
    ingest = datetime.fromisoformat(m.ingest_time)
    shared = {f: getattr(m, f) for f in _SHARED_FIELDS}
    return Quote(**shared, ingest_time_ns=(ingest - _EPOCH) // _US * 1000)


class _Writer:
    """Inserts batches now; after PostgreSQL fails once, hands the rest to the backlog."""

    def __init__(self, store: QuoteStore, done: Reconciled) -> None:
        self.store = store
        self.done = done
        self.deferred = False

    async def write(self, quotes: list[Quote]) -> None:
        if not quotes:
            return
        if not self.deferred:
            try:
                n = await self.store.insert_missing(quotes)
            except StoreError as exc:
                self.deferred = True
                log.warning(
                    "pg_reconcile_deferred",
                    extra={"error_kind": type(exc).__name__, "error": str(exc)},
                )
            else:
                self.done.inserted += n
                metrics.record_store_reconciled(n)
                return
        self.store.submit(quotes)
        self.done.submitted += len(quotes)


async def reconcile(
    js: Any,
    store: QuoteStore,
    settings: NatsSettings,
    *,
    tail: Tail,
    lookback_s: float,
    batch: int = BATCH,
) -> Reconciled:
    """Insert the quotes ``settings.stream`` stored from ``lookback_s`` before ``tail`` up to
    it that the table lacks; logs ``pg_reconciled`` (or ``pg_reconcile_failed`` if the stream
    could not be read: what was read by then is stored)."""
    t0 = time.perf_counter()
    done = Reconciled()
    writer = _Writer(store, done)
    cfg = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=datetime.fromtimestamp(tail.last_time - lookback_s, UTC),
        ack_policy=AckPolicy.NONE,
        inactive_threshold=60.0,
    )
    try:
        sub = await js.pull_subscribe("", stream=settings.stream, config=cfg)
        try:
            await _read(sub, tail.last_seq, batch, settings.ack_timeout_s, writer)
        finally:
            await sub.unsubscribe()
    except NATS_ERRORS as exc:
        log.warning(
            "pg_reconcile_failed",
            extra={"messages": done.messages, "error_kind": type(exc).__name__, "error": str(exc)},
        )
    done.seconds = round(time.perf_counter() - t0, 3)
    log.info(
        "pg_reconciled",
        extra={
            "stream": settings.stream,
            "lookback_s": lookback_s,
            "messages": done.messages,
            "inserted": done.inserted,
            "submitted": done.submitted,
            "undecodable": done.undecodable,
            "seconds": done.seconds,
        },
    )
    return done


async def _read(sub: Any, last_seq: int, batch: int, timeout_s: float, writer: _Writer) -> None:
    """Fetch up to ``last_seq``, writing each fetched round's quotes."""
    done = writer.done
    if (await sub.consumer_info()).num_pending == 0:
        return
    while True:
        try:
            got = await sub.fetch(batch, timeout=timeout_s)
        except nats.errors.TimeoutError:
            return  # nothing more stored
        quotes: list[Quote] = []
        end = False
        for m in got:
            meta = m.metadata
            if meta.sequence.stream > last_seq:
                end = True
                break
            done.messages += 1
            try:
                quotes.append(to_quote(m.data))
            except (msgspec.DecodeError, ValueError):
                done.undecodable += 1
            if meta.sequence.stream == last_seq or meta.num_pending == 0:
                end = True
                break
        await writer.write(quotes)
        if end:
            return
