"""``ingestion-agent dlq list|replay``: inspect and re-drive the dead-letter stream.

* ``list`` prints the newest dead letters (optionally filtered by reason or symbol).
* ``replay`` re-drives them:

  - ``unpublishable`` letters (JetStream refused the message itself) are published again,
    verbatim, to their original subject with their original ``Nats-Msg-Id``;
  - ``rejected`` quotes are validated again under the *current* rules (as of the time they were
    fetched, so staleness is judged as it was then) - e.g. after raising
    ``validation.max_age_regular_s`` - and those that now pass are published as quotes. A
    letter carries no reference price, so its price is judged by the absolute bounds alone, and
    ``price_unconfirmed`` letters are not re-driven (``unconfirmed``): a genuine move was
    published by the read that confirmed it.

  The quotes re-driven are then written to PostgreSQL and to the Redis latest quote (where
  newer), through the publisher's own :class:`~engine.sinks.store.QuoteStore` and
  :class:`~engine.sinks.cache.QuoteCache`. A letter is deleted from the DLQ only once its
  message is acknowledged (or known to be in the stream already) and its quote is in PostgreSQL;
  the rest stay. ``--dry-run`` only reports what would happen.
"""

from __future__ import annotations

import calendar
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, Final, Literal, TextIO

import msgspec
import nats.js.errors

from engine.commands.output import write_json
from engine.config import Config
from engine.deps.nats import ERRORS as NATS_ERRORS
from engine.deps.nats import command_connection
from engine.errors import IngestionError
from engine.quote import (
    DlqMessage,
    Quote,
    QuoteMessage,
    Rejection,
    RejectReason,
    Rules,
    YahooQuote,
    validate,
)
from engine.records import OutMessage
from engine.sinks.cache import QuoteCache
from engine.sinks.store import QuoteStore

STORE_TIMEOUT_S: Final = 30.0
"""How long ``replay`` waits for PostgreSQL to take the replayed quotes (then they are spilled,
written by the engine's next run, and their letters kept)."""

_QUOTE_FIELDS: Final = tuple(
    f for f in QuoteMessage.__struct_fields__ if f in Quote.__struct_fields__
)
"""The fields a quote message carries unchanged from its :class:`Quote`."""

_dec = msgspec.json.Decoder(DlqMessage)
_msg_dec = msgspec.json.Decoder(QuoteMessage)
_enc = msgspec.json.Encoder()


async def _letters(
    js: Any, stream: str, newest_first: bool
) -> AsyncIterator[tuple[int, DlqMessage]]:
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return
    if not info.state.messages:
        return
    seqs = range(info.state.first_seq, info.state.last_seq + 1)
    for seq in reversed(seqs) if newest_first else seqs:
        try:
            raw = await js.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            continue  # deleted
        try:
            yield seq, _dec.decode(raw.data or b"")
        except msgspec.DecodeError:
            continue


def _match(d: DlqMessage, reason: str | None, symbol: str | None) -> bool:
    return (reason is None or d.reason == reason) and (symbol is None or d.symbol == symbol)


async def list_command(
    config: Config, out: TextIO, *, limit: int = 20, reason: str | None = None,
    symbol: str | None = None, fmt: Literal["text", "json"] = "text",
) -> int:  # fmt: skip
    """Print the newest ``limit`` letters (0: all) matching ``reason``/``symbol``."""
    s = config.nats
    found: list[tuple[int, DlqMessage]] = []
    async with command_connection(s, config.cli.service_timeout_s) as nc:
        js = nc.jetstream()
        async for seq, d in _letters(js, s.dlq_stream, newest_first=True):
            if _match(d, reason, symbol):
                found.append((seq, d))
                if limit and len(found) >= limit:
                    break
    if fmt == "json":
        letters = [{"seq": seq, **msgspec.structs.asdict(d)} for seq, d in found]
        write_json(out, {"stream": s.dlq_stream, "letters": letters})
        return 0
    print(f"{'seq':>8}  {'kind':13} {'symbol':10} {'reason':22} detail", file=out)
    for seq, d in found:
        print(f"{seq:>8}  {d.kind:13} {d.symbol:10} {d.reason:22} {d.detail}", file=out)
    if not found:
        print(f"no dead letters in {s.dlq_stream}", file=out)
    return 0


def _fetched_at(d: DlqMessage) -> float:
    return _epoch_ns(d.ingest_time) / 1e9


def _epoch_ns(iso: str) -> int:
    """``2026-11-26T15:04:05.123456Z`` -> epoch nanoseconds (now if it does not parse)."""
    try:
        s = calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return time.time_ns()
    frac = iso[20:26] if iso[19:20] == "." else ""
    return s * 1_000_000_000 + (int(frac.ljust(6, "0")) * 1000 if frac.isdigit() else 0)


class Replay(msgspec.Struct, frozen=True):
    """What re-driving one letter does: publish ``message``; store ``quote`` (None: the letter
    is not a quote, nothing to store)."""

    message: OutMessage
    quote: Quote | None


def _requote(d: DlqMessage, rules: Rules, subject: str) -> Replay | None:
    """The quote of a rejected letter that passes the current rules, else None."""
    raw = YahooQuote(
        symbol=d.symbol, quote_type="EQUITY", market_state=d.market_state,
        regular_market_price=d.price, regular_market_time=d.market_time,
        regular_market_volume=d.volume, regular_market_change_percent=d.change_percent,
        currency=d.currency, exchange=d.exchange,
    )  # fmt: skip
    q = validate(raw, now_s=_fetched_at(d), rules=rules)
    if isinstance(q, Rejection):
        return None
    q = msgspec.structs.replace(
        q, source=d.source, correlation_id=d.correlation_id, cycle=d.cycle,
        ingest_time_ns=int(_fetched_at(d) * 1e9),
    )  # fmt: skip
    return Replay(OutMessage(False, q.msg_id, _enc.encode(q.to_message()), d.cycle, subject), q)


def _quote_of(payload: bytes) -> Quote | None:
    """The quote an unpublishable letter carries verbatim (None if it is not a quote message)."""
    try:
        m = _msg_dec.decode(payload)
    except msgspec.DecodeError:  # ValidationError included
        return None
    fields = {f: getattr(m, f) for f in _QUOTE_FIELDS}
    return Quote(**fields, ingest_time_ns=_epoch_ns(m.ingest_time))


def _replay_of(d: DlqMessage, rules: Rules, subject: str) -> Replay | str:
    """The replay of a letter, or the tally key saying why there is none."""
    if d.kind == "unpublishable" and d.original is not None:
        payload = d.original.encode()
        msg_id = d.original_msg_id or ""
        out = OutMessage(False, msg_id, payload, d.cycle, d.original_subject or subject)
        return Replay(out, _quote_of(payload))
    if d.kind == "rejected" and d.reason == RejectReason.PRICE_UNCONFIRMED.label:
        # the letter does not carry the reference it was judged against; a genuine move was
        # published by the read that confirmed it (engine/plausibility.py)
        return "unconfirmed"
    if d.kind == "rejected":
        return _requote(d, rules, subject) or "still_invalid"
    return "not_replayable"


async def _store(config: Config, quotes: list[Quote], tally: Counter[str]) -> bool:
    """Write ``quotes`` to PostgreSQL (and the Redis latest quote where newer), as the publisher
    does; True once PostgreSQL holds them (or it is disabled). A Redis failure is counted, not
    fatal: the cache is a latest-value view that the next cycle refreshes."""
    if not quotes:
        return True
    stored = True
    if config.postgres.enabled:
        try:
            async with QuoteStore.connect(config.postgres) as store:
                store.submit(quotes)
                stored = await store.flush(STORE_TIMEOUT_S)
        except IngestionError as exc:
            tally[f"store_failed:{type(exc).__name__}"] += len(quotes)
            return False
        tally["stored" if stored else "store_spilled"] += len(quotes)
    if config.redis.enabled:
        try:
            async with QuoteCache.connect(config.redis) as cache:
                tally["cached"] += await cache.write_latest(quotes)
        except IngestionError as exc:
            tally[f"cache_failed:{type(exc).__name__}"] += 1
    return stored


async def replay_command(
    config: Config, out: TextIO, *, reason: str | None = None, symbol: str | None = None,
    dry_run: bool = False,
) -> int:  # fmt: skip
    """Re-drive the letters: publish each, then store the quotes (PostgreSQL, Redis); a letter
    is deleted once its message is acknowledged and its quote, if any, is in PostgreSQL."""
    s, rules = config.nats, config.validation
    tally: Counter[str] = Counter()
    async with command_connection(s, config.cli.service_timeout_s) as nc:
        js = nc.jetstream()
        to_store: list[tuple[int, Quote]] = []
        async for seq, d in _letters(js, s.dlq_stream, newest_first=False):
            if not _match(d, reason, symbol):
                continue
            target = _replay_of(d, rules, s.subject)
            if isinstance(target, str):
                tally[target] += 1
                continue
            if dry_run:
                tally["would_replay"] += 1
                continue
            msg = target.message
            headers = {"Nats-Msg-Id": msg.msg_id} if msg.msg_id else None
            try:
                ack = await js.publish(msg.subject, msg.payload, headers=headers)
            except NATS_ERRORS as exc:
                tally[f"failed:{type(exc).__name__}"] += 1
                continue
            tally["duplicate" if ack.duplicate else "replayed"] += 1
            if target.quote is None:
                await js.delete_msg(s.dlq_stream, seq)
            else:
                to_store.append((seq, target.quote))
        stored = await _store(config, [q for _, q in to_store], tally)
        if stored:
            for seq, _ in to_store:
                await js.delete_msg(s.dlq_stream, seq)
    summary = " ".join(f"{k}={n}" for k, n in sorted(tally.items())) or "nothing to replay"
    print(f"dlq replay ({s.dlq_stream}): {summary}", file=out)
    return 1 if any(k.startswith(("failed", "store_failed", "store_spilled")) for k in tally) else 0
