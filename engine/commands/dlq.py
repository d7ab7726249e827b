"""``ingestion-agent dlq list|replay``: inspect and re-drive the dead-letter stream.

* ``list`` prints the newest dead letters (optionally filtered by reason or symbol).
* ``replay`` re-drives them:

  - ``unpublishable`` letters (JetStream refused the message itself) are published again,
    verbatim, to their original subject with their original ``Nats-Msg-Id``;
  - ``rejected`` quotes are validated again under the *current* rules (as of the time they were
    fetched, so staleness is judged as it was then) - e.g. after raising ``validation.max_price``
    for BRK-A - and those that now pass are published as quotes.

  A letter is deleted from the DLQ only once its message is acknowledged (or known to be in the
  stream already); the rest stay. ``--dry-run`` only reports what would happen.
"""

from __future__ import annotations

import calendar
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, TextIO

import msgspec
import nats.js.errors

from engine.config import Config
from engine.deps.nats import ERRORS as NATS_ERRORS
from engine.deps.nats import connection as nats_connection
from engine.quote import DlqMessage, Rejection, Rules, YahooQuote, validate
from engine.records import OutMessage

_dec = msgspec.json.Decoder(DlqMessage)
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
    symbol: str | None = None,
) -> int:  # fmt: skip
    s = config.nats
    async with nats_connection(s, attempts=3) as nc:
        js = nc.jetstream()
        n = 0
        print(f"{'seq':>8}  {'kind':13} {'symbol':10} {'reason':22} detail", file=out)
        async for seq, d in _letters(js, s.dlq_stream, newest_first=True):
            if not _match(d, reason, symbol):
                continue
            print(f"{seq:>8}  {d.kind:13} {d.symbol:10} {d.reason:22} {d.detail}", file=out)
            n += 1
            if n >= limit:
                break
        if n == 0:
            print(f"no dead letters in {s.dlq_stream}", file=out)
    return 0


def _fetched_at(d: DlqMessage) -> float:
    try:
        return float(calendar.timegm(time.strptime(d.ingest_time[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return time.time()


def _requote(d: DlqMessage, rules: Rules, subject: str) -> OutMessage | None:
    """The quote message for a rejected letter that passes the current rules, else None."""
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
    return OutMessage(False, q.msg_id, _enc.encode(q.to_message()), d.cycle, subject)


async def replay_command(
    config: Config, out: TextIO, *, reason: str | None = None, symbol: str | None = None,
    dry_run: bool = False,
) -> int:  # fmt: skip
    s, rules = config.nats, config.validation
    tally: Counter[str] = Counter()
    async with nats_connection(s, attempts=3) as nc:
        js = nc.jetstream()
        async for seq, d in _letters(js, s.dlq_stream, newest_first=False):
            if not _match(d, reason, symbol):
                continue
            if d.kind == "unpublishable" and d.original is not None:
                target: OutMessage | None = OutMessage(
                    False,
                    d.original_msg_id or "",
                    d.original.encode(),
                    d.cycle,
                    d.original_subject or s.subject,
                )
            elif d.kind == "rejected":
                target = _requote(d, rules, s.subject)
            else:
                tally["not_replayable"] += 1
                continue
            if target is None:
                tally["still_invalid"] += 1
                continue
            if dry_run:
                tally["would_replay"] += 1
                continue
            headers = {"Nats-Msg-Id": target.msg_id} if target.msg_id else None
            try:
                ack = await js.publish(target.subject, target.payload, headers=headers)
            except NATS_ERRORS as exc:
                tally[f"failed:{type(exc).__name__}"] += 1
                continue
            tally["duplicate" if ack.duplicate else "replayed"] += 1
            await js.delete_msg(s.dlq_stream, seq)
    summary = " ".join(f"{k}={n}" for k, n in sorted(tally.items())) or "nothing to replay"
    print(f"dlq replay ({s.dlq_stream}): {summary}", file=out)
    return 1 if any(k.startswith("failed") for k in tally) else 0
