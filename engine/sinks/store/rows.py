"""Quotes as rows of the quote table: the column order, the encoder, and what a bad row is.

Values are checked here, before COPY: a value PostgreSQL would refuse (NUL or invalid text, a
non-finite price, a volume out of bigint range) makes :meth:`RowEncoder.row` return None, so a
refused COPY (:func:`is_data_error`) is rare.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Final

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base

from engine.quote import Quote

COLUMNS: Final = (
    "market_time",
    "symbol",
    "price",
    "volume",
    "change_percent",
    "currency",
    "exchange",
    "market_state",
    "ingest_time",
    "correlation_id",
)
Row = tuple[Any, ...]
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT64_MAX: Final = (1 << 63) - 1
_DATA_ERRORS: Final = (
    asyncpg.DataError,  # SQLSTATE class 22
    asyncpg.IntegrityConstraintViolationError,  # class 23
    asyncpg_base.DataError,  # client-side encoding of a value...
    ValueError,  # ...which asyncpg's COPY encoder raises as a plain ValueError (bad uuid)
    TypeError,
    OverflowError,
)


def _looks_like_uuid(s: str | None) -> bool:
    """Canonical 8-4-4-4-12 shape (cheap: this runs for every row)."""
    return s is not None and len(s) == 36 and s[8] == s[13] == s[18] == s[23] == "-"


class RowEncoder:
    """Quotes -> table rows, memoising the datetimes (a cycle shares few distinct seconds)."""

    __slots__ = ("_ingest", "_market")

    def __init__(self) -> None:
        self._market: dict[int, dt.datetime] = {}
        self._ingest: dict[int, dt.datetime] = {}

    def row(self, q: Quote) -> Row | None:
        """The table row for a quote, or None when a value cannot be stored (NUL, bad UTF-8,
        non-finite price, volume out of bigint range)."""
        for s in (q.symbol, q.market_state, q.currency, q.exchange):
            if s is not None and not _storable_text(s):
                return None
        if not q.symbol or not math.isfinite(q.price) or not -_INT64_MAX <= q.volume <= _INT64_MAX:
            return None
        cp = q.change_percent
        if cp is not None and not math.isfinite(cp):
            cp = None
        market = self._market.get(q.market_time)
        if market is None:
            market = self._market[q.market_time] = EPOCH + dt.timedelta(seconds=q.market_time)
        us = q.ingest_time_ns // 1000
        ingest = self._ingest.get(us)
        if ingest is None:
            ingest = self._ingest[us] = EPOCH + dt.timedelta(microseconds=us)
        cid: str | None = q.correlation_id
        if not _looks_like_uuid(cid):  # a wrong hex digit still fails in asyncpg: bisected out
            cid = None
        return (
            market,
            q.symbol,
            q.price,
            q.volume,
            cp,
            q.currency,
            q.exchange,
            q.market_state,
            ingest,
            cid,  # asyncpg encodes the canonical text form itself
        )


def quote_row(q: Quote) -> Row | None:
    """The table row of one quote (see :meth:`RowEncoder.row`)."""
    return RowEncoder().row(q)


def _storable_text(s: str) -> bool:
    if "\x00" in s:
        return False
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def is_data_error(exc: BaseException) -> bool:
    """A failure caused by the rows themselves (retrying the same rows cannot succeed)."""
    return isinstance(exc, _DATA_ERRORS)
