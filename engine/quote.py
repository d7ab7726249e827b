"""Typed models at the engine's boundaries, and the validation rules for one quote.

* :class:`YahooQuote` - one element of ``quoteResponse.result`` of ``/v7/finance/quote`` with
  ``formatted=false``: every field optional (Yahoo omits what it likes), ints accepted where floats
  are documented (Yahoo writes whole numbers without a decimal point).
* :class:`Quote` - a validated quote inside the engine (frozen).
* :class:`QuoteMessage` / :class:`DlqMessage` - the JSON published on ``data.market.quote`` and
  ``data.market.dlq``; ``schemas/*.schema.json`` are generated from these and a test keeps them
  in sync.
* :func:`validate` - the pure rule set: a :class:`YahooQuote` in, a :class:`Quote` or a
  :class:`Rejection` out, with the clock passed in. Whether the price is plausible is judged
  against the quote's own reference (:mod:`engine.plausibility`).
"""

from __future__ import annotations

import enum
import functools
import math
import time
from typing import Any, Final, Literal

import msgspec

from engine.config import ValidationSettings
from engine.plausibility import Verdict, judge_price, reference

SCHEMA_VERSION: Final = 1


Rules = ValidationSettings
"""Bounds of :func:`validate`: the config's ``[validation]`` section: ``max_move`` (how far a price
may be from its own reference), ``min_price``/``max_price`` (absolute bounds, inclusive, for a
price without reference or a confirmed out-of-band move; :mod:`engine.plausibility`), and the
age rules."""

DEFAULT_RULES: Final = Rules()

INT64_MAX: Final = 2**63 - 1
MIN_MARKET_TIME_S: Final = 315_532_800
"""1980-01-01T00:00:00Z: an earlier market time is garbage (Yahoo's epoch-0 stubs, -2**62)."""
MAX_MARKET_TIME_S: Final = 253_402_300_799
"""9999-12-31T23:59:59Z: the last instant an ISO timestamp (and ``time.gmtime``) can show."""


class RejectReason(enum.IntEnum):
    """Why a quote was rejected. Values are stable: they travel through the ring as one byte."""

    MALFORMED = 1  # the quote object did not decode (wrong types)
    MISSING_PRICE = 2
    MISSING_TIME = 3
    MISSING_VOLUME = 4
    MISSING_MARKET_STATE = 5
    NOT_TRADED = 6  # quoteType NONE: delisted/renamed stub
    PRICE_OUT_OF_RANGE = 7
    NEGATIVE_VOLUME = 8
    STALE = 9  # older than 5 min while the market is REGULAR
    FUTURE_TIMESTAMP = 10
    UNKNOWN_MARKET_STATE = 11
    TIME_OUT_OF_RANGE = 12  # market time outside the sane epoch range (before 1980, after 9999)
    VOLUME_OUT_OF_RANGE = 13  # volume does not fit a signed 64-bit integer
    UNREQUESTED_SYMBOL = 14  # the answer carries a symbol the request did not ask for
    ENCODING_FAILED = 15  # passed validation but could not be written or built: quarantined
    PRICE_UNCONFIRMED = 16  # beyond max_move of its own reference: held until a read confirms it

    @property
    def label(self) -> str:
        return self.name.lower()


MarketState = Literal["PREPRE", "PRE", "REGULAR", "POST", "POSTPOST", "CLOSED"]
MARKET_STATES: Final[tuple[str, ...]] = ("PREPRE", "PRE", "REGULAR", "POST", "POSTPOST", "CLOSED")


class YahooQuote(msgspec.Struct, frozen=True, rename="camel"):
    """One v7 quote as Yahoo sends it (``formatted=false``). Only fields we read are declared.

    The reference prices (previous close, day and 52-week ranges) are read as they come: one
    that is absent, not a number or not finite is no reference (:func:`plausibility.positive`),
    and never makes the quote malformed."""

    symbol: str
    quote_type: str | None = None
    market_state: str | None = None
    regular_market_price: float | None = None
    regular_market_time: int | None = None
    regular_market_volume: int | None = None
    regular_market_change_percent: float | None = None
    currency: str | None = None
    exchange: str | None = None
    regular_market_previous_close: Any = None
    regular_market_day_low: Any = None
    regular_market_day_high: Any = None
    fifty_two_week_low: Any = None
    fifty_two_week_high: Any = None


class Quote(msgspec.Struct, frozen=True):
    """A validated quote inside the engine."""

    symbol: str
    price: float
    volume: int
    change_percent: float | None
    market_time: int  # epoch seconds, UTC
    market_state: str
    currency: str | None
    exchange: str | None
    source: str
    ingest_time_ns: int
    correlation_id: str  # UUID4, canonical text form
    cycle: int = 0
    stale: bool = False  # older than 5 min outside regular hours: accepted, counted

    @property
    def msg_id(self) -> str:
        """JetStream ``Nats-Msg-Id``: the same quote is the same message. The identity is
        (symbol, market time, volume): a volume that grew at the same market time is a new
        observation, so a new message."""
        return f"{self.symbol}:{self.market_time}:{self.volume}"

    def to_message(self) -> QuoteMessage:
        """The document published on ``data.market.quote`` and cached at ``market:{SYMBOL}``."""
        return QuoteMessage(
            schema_version=SCHEMA_VERSION,
            timestamp=iso_seconds(self.market_time),
            ingest_time=iso_micros(self.ingest_time_ns),
            **{f: getattr(self, f) for f in _MESSAGE_FIELDS},
        )


class Rejection(msgspec.Struct, frozen=True):
    """A quote that failed validation, with what it carried (for the dead-letter queue and for
    ``dlq replay``, which re-validates it under the current rules)."""

    symbol: str
    reason: RejectReason
    detail: str
    market_time: int | None = None
    price: float | None = None
    volume: int | None = None
    change_percent: float | None = None
    market_state: str | None = None
    currency: str | None = None
    exchange: str | None = None


class QuoteMessage(msgspec.Struct, frozen=True, omit_defaults=False):
    """Payload of ``data.market.quote`` (JSON). Consumers must ignore unknown fields."""

    schema_version: int
    symbol: str
    price: float
    volume: int
    change_percent: float | None
    timestamp: str  # ISO-8601 UTC of the quote's market time, e.g. 2026-11-26T15:04:05Z
    market_time: int  # the same instant, epoch seconds
    currency: str | None
    exchange: str | None
    market_state: str
    source: str
    ingest_time: str  # ISO-8601 UTC with microseconds, when the engine fetched it
    correlation_id: str
    cycle: int
    stale: bool = False  # older than 5 min outside regular hours (expected then; still published)


_MESSAGE_FIELDS: Final = tuple(
    f for f in QuoteMessage.__struct_fields__ if f in Quote.__struct_fields__
)
"""Fields a :class:`QuoteMessage` copies from its :class:`Quote` unchanged."""


class DlqMessage(msgspec.Struct, frozen=True):
    """Payload of ``data.market.dlq`` (JSON): a rejected quote or an unpublishable message.

    ``rejected``: the quote's fields as Yahoo sent them (null where absent) and why it failed.
    ``unpublishable``: JetStream refused the message itself; ``original*`` hold it verbatim so
    ``ingestion-agent dlq replay`` can re-drive it.
    """

    schema_version: int
    kind: Literal["rejected", "unpublishable"]
    symbol: str
    reason: str
    detail: str
    market_time: int | None
    price: float | None
    source: str
    ingest_time: str
    correlation_id: str
    cycle: int
    volume: int | None = None
    change_percent: float | None = None
    market_state: str | None = None
    currency: str | None = None
    exchange: str | None = None
    original_subject: str | None = None
    original_msg_id: str | None = None
    original: str | None = None


@functools.lru_cache(maxsize=65536)
def iso_seconds(epoch_s: int) -> str:
    """Epoch seconds -> ``2026-11-26T15:04:05Z`` (market times repeat a lot: cached)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


@functools.lru_cache(maxsize=1024)
def iso_micros(epoch_ns: int) -> str:
    """Epoch nanoseconds -> ``2026-11-26T15:04:05.123456Z`` (one value per batch: cached)."""
    s, ns = divmod(epoch_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{ns // 1000:06d}Z"


def _rejection(raw: YahooQuote, reason: RejectReason, detail: str) -> Rejection:
    """``raw`` rejected for ``reason``, carrying what Yahoo sent."""
    return Rejection(
        raw.symbol,
        reason,
        detail[:90],
        raw.regular_market_time,
        raw.regular_market_price,
        raw.regular_market_volume,
        raw.regular_market_change_percent,
        raw.market_state,
        raw.currency,
        raw.exchange,
    )


_PRICE_REASON: Final = {
    Verdict.OUT_OF_RANGE: RejectReason.PRICE_OUT_OF_RANGE,
    Verdict.UNCONFIRMED: RejectReason.PRICE_UNCONFIRMED,
}


def _price_rule(
    raw: YahooQuote, price: float, rules: Rules, held: float | None
) -> tuple[RejectReason, str] | None:
    """None if the price is plausible against the quote's own reference, else the reason and
    the detail (:mod:`engine.plausibility`)."""
    ref = reference(
        raw.regular_market_previous_close,
        raw.regular_market_day_low,
        raw.regular_market_day_high,
        raw.fifty_two_week_low,
        raw.fifty_two_week_high,
    )
    j = judge_price(
        price,
        ref,
        min_price=rules.min_price,
        max_price=rules.max_price,
        max_move=rules.max_move,
        held=held,
    )
    return None if j.ok else (_PRICE_REASON[j.verdict], j.detail)


def _broken_rule(
    raw: YahooQuote, now_s: float, rules: Rules, held: float | None = None
) -> tuple[RejectReason, str] | None:
    """The first rule ``raw`` breaks, with the detail naming the value; None if it passes."""
    if raw.quote_type == "NONE":
        return RejectReason.NOT_TRADED, "quoteType NONE (delisted or renamed)"
    price, t, vol = raw.regular_market_price, raw.regular_market_time, raw.regular_market_volume
    if price is None:
        return RejectReason.MISSING_PRICE, "regularMarketPrice absent"
    if t is None:
        return RejectReason.MISSING_TIME, "regularMarketTime absent"
    state = raw.market_state
    if state is None:
        return RejectReason.MISSING_MARKET_STATE, "marketState absent"
    if state not in MARKET_STATES:
        return RejectReason.UNKNOWN_MARKET_STATE, f"marketState={state!r}"
    broken_price = _price_rule(raw, price, rules, held)
    if broken_price is not None:
        return broken_price
    if vol is None:
        return RejectReason.MISSING_VOLUME, "regularMarketVolume absent"
    if vol < 0:
        return RejectReason.NEGATIVE_VOLUME, f"volume={vol}"
    if vol > INT64_MAX:
        return RejectReason.VOLUME_OUT_OF_RANGE, f"volume={vol} exceeds 2**63-1"
    if not MIN_MARKET_TIME_S <= t <= MAX_MARKET_TIME_S:
        return (
            RejectReason.TIME_OUT_OF_RANGE,
            f"market time {t} not in [{MIN_MARKET_TIME_S}, {MAX_MARKET_TIME_S}]",
        )
    age = now_s - t
    if age < -rules.max_future_skew_s:
        return RejectReason.FUTURE_TIMESTAMP, f"market time {-age:.0f}s ahead"
    if age > rules.max_age_regular_s and state == "REGULAR":
        return RejectReason.STALE, f"age={age:.0f}s > {rules.max_age_regular_s:.0f}s in REGULAR"
    return None


def validate(
    raw: YahooQuote, *, now_s: float, rules: Rules = DEFAULT_RULES, held: float | None = None
) -> Quote | Rejection:
    """Apply the product's quote rules: the :class:`Quote`, or the :class:`Rejection` saying why.

    ``now_s`` is the caller's clock (epoch seconds); ``held`` the out-of-band price of this
    symbol's previous read that may confirm this one (:class:`plausibility.HeldMoves`; a
    ``price_unconfirmed`` rejection asks the caller to hold its price). The returned
    :class:`Quote` has placeholder ``source``/``ingest_time_ns``/``correlation_id`` that the
    caller fills with :func:`msgspec.structs.replace` (kept out of here so this stays pure).
    """
    broken = _broken_rule(raw, now_s, rules, held)
    if broken is not None:
        return _rejection(raw, *broken)
    # the rules above guarantee these are present
    assert raw.regular_market_price is not None and raw.regular_market_time is not None
    assert raw.regular_market_volume is not None and raw.market_state is not None
    cp = raw.regular_market_change_percent
    return Quote(
        symbol=raw.symbol,
        price=float(raw.regular_market_price),
        volume=int(raw.regular_market_volume),
        change_percent=None if cp is None or not math.isfinite(cp) else float(cp),
        market_time=int(raw.regular_market_time),
        market_state=raw.market_state,
        currency=raw.currency,
        exchange=raw.exchange,
        source="",
        ingest_time_ns=0,
        correlation_id="",
        stale=now_s - raw.regular_market_time > rules.max_age_regular_s,
    )
