"""Conversion between validated quotes and fixed-size ring records, and records to messages.

Workers turn :class:`~engine.quote.Quote` / :class:`~engine.quote.Rejection` values into
``RECORD_DTYPE`` rows (:func:`to_records`); the publisher turns rows into the JSON payloads and
``Nats-Msg-Id`` headers of ``data.market.quote`` and ``data.market.dlq`` (:func:`to_messages`).
Keeping both directions here keeps the record layout's meaning in one place.

Neither direction raises for one bad record (quarantine): a quote that passed validation but
does not fit a record (an integer beyond 64 bits, a symbol longer than the record's field, which
is never cut to fit) becomes an ``encoding_failed`` rejection in :func:`to_records`; a record
whose message cannot be built becomes an ``encoding_failed`` dead letter in :func:`to_messages`.
Either way it reaches the dead-letter queue with its reason and the rest of the batch moves on.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from engine.quote import (
    MARKET_STATES,
    SCHEMA_VERSION,
    DlqMessage,
    Quote,
    QuoteMessage,
    Rejection,
    RejectReason,
    iso_micros,
    iso_seconds,
)
from engine.ringbuf import (
    DETAIL_BYTES,
    KIND_QUOTE,
    KIND_REJECTION,
    KIND_UNCHANGED,
    RECORD_DTYPE,
    SYMBOL_BYTES,
    Records,
)

SOURCES: Final[tuple[str, ...]] = ("yahoo_v7", "yahoo_stream")
"""Quote sources by record code; a second source (the websocket streamer) writes code 1."""

FLAG_STALE: Final = 1
_STATE_CODE: Final = {s: i for i, s in enumerate(MARKET_STATES)}
_NAN: Final = float("nan")
_REASON_LABEL: Final = {int(r): r.label for r in RejectReason}


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_ENCODE_ERRORS: Final = (OverflowError, ValueError, TypeError)
_BUILD_ERRORS: Final = (
    OverflowError,
    OSError,
    ValueError,
    TypeError,
    IndexError,
    msgspec.MsgspecError,
)
"""What building one message can raise on a poison record (``time.gmtime`` of a huge time is
an ``OSError``/``OverflowError``; a float that is not JSON an ``EncodeError``...)."""


def _b(s: str | None, n: int) -> bytes:
    return (s or "").encode("utf-8", "replace")[:n]


def _marked(s: str) -> bytes:
    """A rejection's symbol as record bytes: cut with a visible ``...`` when too long (a dead
    letter must still say which answer it came from; ``...`` is in no real symbol)."""
    b = s.encode("utf-8", "replace")
    return b if len(b) <= SYMBOL_BYTES else b[: SYMBOL_BYTES - 3] + b"..."


def _num(x: float | None) -> float:
    if x is None or not isinstance(x, int | float):
        return _NAN
    try:
        return float(x)
    except OverflowError:
        return _NAN


def _i64(x: int | None, default: int) -> int:
    """``x`` when it fits a signed 64-bit field, else ``default`` (what Yahoo sent is in the
    rejection's detail)."""
    return x if isinstance(x, int) and _INT64_MIN <= x <= _INT64_MAX else default


def uuid4_bytes(n: int) -> npt.NDArray[np.uint8]:
    """``n`` random RFC 4122 version-4 UUIDs as an (n, 16) uint8 array (one urandom call)."""
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def quarantined(symbol: str, stage: str, exc: BaseException) -> Rejection:
    """The rejection standing for a record that failed after validation at ``stage``."""
    return Rejection(symbol, RejectReason.ENCODING_FAILED, f"{stage}: {type(exc).__name__}: {exc}")


def to_records(
    quotes: Sequence[Quote],
    rejections: Sequence[Rejection],
    *,
    cycle: int,
    source: int,
    ingest_time_ns: int,
    unchanged: Sequence[Quote] = (),
) -> Records:
    """Rows for the ring; correlation ids (UUID4) are minted here, one per row.

    A quote that does not fit a record is quarantined: it becomes an ``encoding_failed``
    rejection row (the others are written as usual).
    """
    try:
        return _fill(quotes, rejections, cycle, source, ingest_time_ns, unchanged)
    except _ENCODE_ERRORS:
        pass  # find the culprit(s): one quote at a time
    ok: tuple[list[Quote], list[Quote]] = ([], [])
    bad = list(rejections)
    for group, keep in zip((quotes, unchanged), ok, strict=True):
        for q in group:
            try:
                _fill((q,), (), cycle, source, ingest_time_ns, ())
            except _ENCODE_ERRORS as exc:
                bad.append(quarantined(q.symbol, "ring", exc))
            else:
                keep.append(q)
    return _fill(ok[0], bad, cycle, source, ingest_time_ns, ok[1])


def _fill(
    quotes: Sequence[Quote],
    rejections: Sequence[Rejection],
    cycle: int,
    source: int,
    ingest_time_ns: int,
    unchanged: Sequence[Quote],
) -> Records:
    """Filled column by column (numpy converts a Python list per field in C), which is several
    times faster than building the structured array from per-row tuples."""
    nq, nu = len(quotes), len(unchanged)
    n = nq + nu + len(rejections)
    out = np.zeros(n, dtype=RECORD_DTYPE)
    if n == 0:
        return out
    out["ingest_time_ns"] = ingest_time_ns
    out["cycle"] = cycle
    out["source"] = source
    out["correlation_id"] = uuid4_bytes(n).view("V16").reshape(n)
    for kind, group, q in (
        (KIND_QUOTE, quotes, out[:nq]),
        (KIND_UNCHANGED, unchanged, out[nq : nq + nu]),
    ):
        if not group:
            continue
        q["kind"] = kind
        q["market_time"] = [x.market_time for x in group]
        q["price"] = [x.price for x in group]
        q["volume"] = [x.volume for x in group]
        q["change_percent"] = [
            _NAN if x.change_percent is None else x.change_percent for x in group
        ]
        q["market_state"] = [_STATE_CODE.get(x.market_state, 255) for x in group]
        q["flags"] = [FLAG_STALE if x.stale else 0 for x in group]
        symbols = [x.symbol.encode("utf-8", "replace") for x in group]
        longest = max(map(len, symbols))
        if longest > SYMBOL_BYTES:  # never cut to fit: another symbol's name
            raise ValueError(f"symbol of {longest} bytes exceeds the record's {SYMBOL_BYTES}")
        q["symbol"] = symbols
        q["currency"] = [(x.currency or "").encode("utf-8", "replace")[:8] for x in group]
        q["exchange"] = [(x.exchange or "").encode("utf-8", "replace")[:8] for x in group]
    if rejections:
        r = out[nq + nu :]
        r["kind"] = KIND_REJECTION
        r["reason"] = [int(x.reason) for x in rejections]
        r["market_state"] = [_STATE_CODE.get(x.market_state or "", 255) for x in rejections]
        r["market_time"] = [_i64(x.market_time, 0) for x in rejections]
        r["price"] = [_num(x.price) for x in rejections]
        r["volume"] = [_i64(x.volume, -1) for x in rejections]
        r["change_percent"] = [_num(x.change_percent) for x in rejections]
        r["currency"] = [_b(x.currency, 8) for x in rejections]
        r["exchange"] = [_b(x.exchange, 8) for x in rejections]
        r["symbol"] = [_marked(x.symbol) for x in rejections]
        r["detail"] = [_b(x.detail, DETAIL_BYTES) for x in rejections]
    return out


class OutMessage(msgspec.Struct, frozen=True, array_like=True):
    dlq: bool
    msg_id: str
    payload: bytes
    cycle: int
    subject: str = ""  # resolved from the configuration when empty; fixed once outboxed


_enc: Final = msgspec.json.Encoder()


def _uuid_str(b: bytes) -> str:
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _text(b: bytes) -> str | None:
    return b.decode("utf-8", "replace") or None


class Decoded(msgspec.Struct):
    """A slice of ring records, decoded for the publisher's three destinations."""

    messages: list[OutMessage]  # quotes and dead letters for JetStream
    quotes: list[Quote]  # new quotes: PostgreSQL and Redis
    unchanged: list[Quote]  # still-current quotes: refresh Redis only
    quarantined: int = 0  # records whose message could not be built: dead-lettered instead


def to_messages(recs: Records) -> Decoded:
    """Payloads and ``Nats-Msg-Id`` values for a slice of ring records, and its quotes.

    The quotes (valid ones only, with their correlation ids) are what the store and the cache
    receive; their JSON is exactly the published payload (:meth:`Quote.to_message`). A record
    whose message cannot be built is quarantined: an ``encoding_failed`` dead letter takes its
    place and the others are unaffected.
    """
    d = Decoded([], [], [])
    for row in recs.tolist():
        try:
            _decode_row(row, d)
        except _BUILD_ERRORS as exc:
            d.messages.append(_quarantine_letter(row, exc))
            d.quarantined += 1
    return d


def _decode_row(row: tuple[Any, ...], d: Decoded) -> None:
    """Append what one record becomes to ``d`` (nothing is appended if it raises)."""
    (_, ingest_ns, mtime, price, volume, cp, cycle, kind, reason, state, src, flags, _, cid,
     sym_b, cur_b, exch_b, detail_b) = row  # fmt: skip
    symbol = sym_b.decode("utf-8", "replace")
    source = SOURCES[src] if src < len(SOURCES) else "unknown"
    if kind != KIND_REJECTION:
        # positional, in the Structs' field order: the same as Quote(...).to_message(), without
        # its keyword dict per quote (a quarter of the publisher's CPU)
        change = None if math.isnan(cp) else cp
        market_state = MARKET_STATES[state] if state < len(MARKET_STATES) else "UNKNOWN"
        currency, exchange = _text(cur_b), _text(exch_b)
        cid_text, stale = _uuid_str(bytes(cid)), bool(flags & FLAG_STALE)
        q = Quote(symbol, price, volume, change, mtime, market_state, currency, exchange,
                  source, ingest_ns, cid_text, cycle, stale)  # fmt: skip
        if kind == KIND_UNCHANGED:
            d.unchanged.append(q)
            return
        message = QuoteMessage(SCHEMA_VERSION, symbol, price, volume, change, iso_seconds(mtime),
                               mtime, currency, exchange, market_state, source,
                               iso_micros(ingest_ns), cid_text, cycle, stale)  # fmt: skip
        payload = _enc.encode(message)
        d.messages.append(OutMessage(False, q.msg_id, payload, cycle))
        d.quotes.append(q)
        return
    reason_label = _REASON_LABEL.get(reason, str(reason))
    payload = _enc.encode(
        DlqMessage(
            schema_version=SCHEMA_VERSION,
            kind="rejected",
            symbol=symbol,
            reason=reason_label,
            detail=detail_b.decode("utf-8", "replace"),
            market_time=mtime or None,
            price=None if math.isnan(price) else price,
            source=source,
            ingest_time=iso_micros(ingest_ns),
            correlation_id=_uuid_str(bytes(cid)),
            cycle=cycle,
            volume=None if volume < 0 else volume,
            change_percent=None if math.isnan(cp) else cp,
            market_state=MARKET_STATES[state] if state < len(MARKET_STATES) else None,
            currency=_text(cur_b),
            exchange=_text(exch_b),
        )
    )
    # no market time: the record's ingest second (fixed in the ring, so a re-publish after a
    # crash keeps the id; a cycle number would repeat after a restart)
    d.messages.append(
        OutMessage(True, _letter_id(symbol, reason_label, mtime, ingest_ns), payload, cycle)
    )


def _letter_id(symbol: str, reason: str, mtime: int, ingest_ns: int) -> str:
    """``SYMBOL:reason:key``; the key is the market time, else the record's ingest second."""
    return f"{symbol}:{reason}:{mtime if mtime else f'i{ingest_ns // 1_000_000_000}'}"


def _quarantine_letter(row: tuple[Any, ...], exc: BaseException) -> OutMessage:
    """The ``encoding_failed`` dead letter for a record whose message could not be built: only
    what cannot fail (symbol, cycle, correlation id, the error), none of its values."""
    ingest_ns, cycle, src, cid, sym_b = row[1], row[6], row[10], row[13], row[14]
    symbol = sym_b.decode("utf-8", "replace")
    try:
        ingest_time = iso_micros(ingest_ns)
    except _BUILD_ERRORS:
        ingest_time, ingest_ns = iso_micros(time.time_ns()), 0
    r = quarantined(symbol, "publish", exc)
    letter = DlqMessage(
        schema_version=SCHEMA_VERSION,
        kind="rejected",
        symbol=symbol,
        reason=r.reason.label,
        detail=r.detail[:DETAIL_BYTES],
        market_time=None,
        price=None,
        source=SOURCES[src] if src < len(SOURCES) else "unknown",
        ingest_time=ingest_time,
        correlation_id=_uuid_str(bytes(cid)),
        cycle=cycle,
    )
    msg_id = _letter_id(symbol, r.reason.label, 0, ingest_ns)
    return OutMessage(True, msg_id, _enc.encode(letter), cycle)


def encode_dlq(letter: DlqMessage) -> bytes:
    return _enc.encode(letter)


def unpublishable(m: OutMessage, subject: str, reason: str) -> DlqMessage:
    """The dead letter for a message JetStream refused (kept verbatim for ``dlq replay``)."""
    return DlqMessage(
        schema_version=SCHEMA_VERSION,
        kind="unpublishable",
        symbol=m.msg_id.split(":", 1)[0],
        reason="jetstream_rejected",
        detail=reason,
        market_time=None,
        price=None,
        source="engine",
        ingest_time=iso_micros(time.time_ns()),
        correlation_id=str(uuid.uuid4()),
        cycle=m.cycle,
        original_subject=subject,
        original_msg_id=m.msg_id,
        original=m.payload.decode("utf-8", "replace"),
    )
