"""Conversion between validated quotes and fixed-size ring records, and records to messages.

Workers turn :class:`~engine.quote.Quote` / :class:`~engine.quote.Rejection` values into
``RECORD_DTYPE`` rows (:func:`to_records`); the publisher turns rows into the JSON payloads and
``Nats-Msg-Id`` headers of ``data.market.quote`` and ``data.market.dlq`` (:func:`to_messages`).
Keeping both directions here keeps the record layout's meaning in one place.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

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
)
from engine.ringbuf import DETAIL_BYTES, KIND_QUOTE, KIND_REJECTION, RECORD_DTYPE, Records

SOURCES: Final[tuple[str, ...]] = ("yahoo_v7", "yahoo_stream")
"""Quote sources by record code; a second source (the websocket streamer) writes code 1."""

FLAG_STALE: Final = 1
_STATE_CODE: Final = {s: i for i, s in enumerate(MARKET_STATES)}
_NAN: Final = float("nan")
_REASON_LABEL: Final = {int(r): r.label for r in RejectReason}


def _b(s: str | None, n: int) -> bytes:
    return (s or "").encode("utf-8", "replace")[:n]


def uuid4_bytes(n: int) -> npt.NDArray[np.uint8]:
    """``n`` random RFC 4122 version-4 UUIDs as an (n, 16) uint8 array (one urandom call)."""
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def to_records(
    quotes: Sequence[Quote],
    rejections: Sequence[Rejection],
    *,
    cycle: int,
    source: int,
    ingest_time_ns: int,
) -> Records:
    """Rows for the ring; correlation ids (UUID4) are minted here, one per row."""
    rows: list[tuple[object, ...]] = []
    for q in quotes:
        rows.append(
            (
                0,
                ingest_time_ns,
                q.market_time,
                q.price,
                q.volume,
                _NAN if q.change_percent is None else q.change_percent,
                cycle,
                KIND_QUOTE,
                0,
                _STATE_CODE.get(q.market_state, 255),
                source,
                FLAG_STALE if q.stale else 0,
                0,
                b"",
                _b(q.symbol, 24),
                _b(q.currency, 8),
                _b(q.exchange, 8),
                b"",
            )
        )
    for r in rejections:
        rows.append(
            (
                0,
                ingest_time_ns,
                r.market_time or 0,
                _NAN if r.price is None else r.price,
                -1,
                _NAN,
                cycle,
                KIND_REJECTION,
                int(r.reason),
                255,
                source,
                0,
                0,
                b"",
                _b(r.symbol, 24),
                b"",
                b"",
                _b(r.detail, DETAIL_BYTES),
            )
        )
    out = np.array(rows, dtype=RECORD_DTYPE)
    if len(out):
        out["correlation_id"] = uuid4_bytes(len(out)).view("V16").reshape(len(out))
    return out


class OutMessage(msgspec.Struct, frozen=True, array_like=True):
    dlq: bool
    msg_id: str
    payload: bytes
    cycle: int


_enc: Final = msgspec.json.Encoder()
_iso_cache: dict[int, str] = {}


def _iso_s(t: int) -> str:
    s = _iso_cache.get(t)
    if s is None:
        if len(_iso_cache) > 100_000:
            _iso_cache.clear()
        s = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _iso_cache[t] = s
    return s


def _iso_ns(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uuid_str(b: bytes) -> str:
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _text(b: bytes) -> str | None:
    return b.decode("utf-8", "replace") or None


def to_messages(recs: Records) -> list[OutMessage]:
    """Payloads and ``Nats-Msg-Id`` values for a slice of ring records."""
    out: list[OutMessage] = []
    ingest_iso: dict[int, str] = {}
    for row in recs.tolist():
        (_, ingest_ns, mtime, price, volume, cp, cycle, kind, reason, state, src, flags, _, cid,
         sym_b, cur_b, exch_b, detail_b) = row  # fmt: skip
        symbol = sym_b.decode("utf-8", "replace")
        iso_in = ingest_iso.get(ingest_ns)
        if iso_in is None:
            iso_in = ingest_iso[ingest_ns] = _iso_ns(ingest_ns)
        source = SOURCES[src] if src < len(SOURCES) else "unknown"
        if kind == KIND_QUOTE:
            payload = _enc.encode(
                QuoteMessage(
                    schema_version=SCHEMA_VERSION,
                    symbol=symbol,
                    price=price,
                    volume=volume,
                    change_percent=None if math.isnan(cp) else cp,
                    timestamp=_iso_s(mtime),
                    market_time=mtime,
                    currency=_text(cur_b),
                    exchange=_text(exch_b),
                    market_state=MARKET_STATES[state] if state < len(MARKET_STATES) else "UNKNOWN",
                    source=source,
                    ingest_time=iso_in,
                    correlation_id=_uuid_str(bytes(cid)),
                    cycle=cycle,
                    stale=bool(flags & FLAG_STALE),
                )
            )
            out.append(OutMessage(False, f"{symbol}:{mtime}", payload, cycle))
        else:
            reason_label = (
                RejectReason(reason).label
                if reason in RejectReason._value2member_map_
                else str(reason)
            )
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
                    ingest_time=iso_in,
                    correlation_id=_uuid_str(bytes(cid)),
                    cycle=cycle,
                )
            )
            key = mtime if mtime else f"c{cycle}"
            out.append(OutMessage(True, f"{symbol}:{reason_label}:{key}", payload, cycle))
    return out
