"""``PricingData`` bytes <-> :class:`Pricing`, the engine's typed model of one streamer frame.

Decoding (:func:`decode_pricing`) parses with the protobuf runtime (the message class of
:mod:`.proto`) and keeps only what was on the wire: a field Yahoo did not send is ``None``
(``day_high``/``day_low`` come only when they change, ``day_volume`` not after the close), except
``market_hours``, whose absence means PRE (0, the proto3 default). Unknown fields (34
``components``) are skipped. Two renames put units in the names: ``id`` -> ``symbol``,
``time`` -> ``time_ms`` (epoch milliseconds).

float32 values come back as the *shortest* decimal that reads back to the same float32
(:func:`float32_value`): 314.765 arrives as 314.7650146484375 and is kept as 314.765, which is
what Yahoo's v7 answer says for the same trade.

Encoding (:func:`encode_pricing`) is for the emulator and the tests: it writes the fields that
are not ``None`` (``market_hours`` only when it is not PRE, as Yahoo usually does) and can append
the undeclared field 34, so a frame exercises a decoder's unknown-field path.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import msgspec
import numpy as np
from google.protobuf.message import DecodeError

from engine.errors import StreamFrameError
from engine.source.stream import proto


class MarketHours(enum.IntEnum):
    """``market_hours`` values. Frames may carry others (4 was seen overnight): compare, don't
    convert."""

    PRE = 0
    REGULAR = 1
    POST = 2
    EXTENDED = 3


class QuoteType(enum.IntEnum):
    """``quote_type`` values (yliveticker ``yaticker.proto``)."""

    NONE = 0
    ALTSYMBOL = 5
    HEARTBEAT = 7
    EQUITY = 8
    INDEX = 9
    MUTUALFUND = 11
    MONEYMARKET = 12
    OPTION = 13
    CURRENCY = 14
    WARRANT = 15
    BOND = 17
    FUTURE = 18
    ETF = 20
    COMMODITY = 23
    ECNQUOTE = 28
    CRYPTOCURRENCY = 41
    INDICATOR = 42
    INDUSTRY = 1000


class Pricing(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One decoded ``PricingData``. ``None`` = the field was not in the frame."""

    symbol: str
    time_ms: int | None = None
    price: float | None = None
    market_hours: int = MarketHours.PRE
    change: float | None = None
    change_percent: float | None = None  # percent units (1.5 = 1.5 %)
    day_volume: int | None = None
    day_high: float | None = None
    day_low: float | None = None
    exchange: str | None = None
    quote_type: int | None = None
    price_hint: int | None = None
    currency: str | None = None
    short_name: str | None = None
    open_price: float | None = None
    previous_close: float | None = None
    last_size: int | None = None
    bid: float | None = None
    bid_size: int | None = None
    ask: float | None = None
    ask_size: int | None = None
    expire_date: int | None = None
    strike_price: float | None = None
    underlying_symbol: str | None = None
    open_interest: int | None = None
    options_type: int | None = None
    mini_option: int | None = None
    vol_24hr: int | None = None
    vol_all_currencies: int | None = None
    from_currency: str | None = None
    last_market: str | None = None
    circulating_supply: float | None = None
    market_cap: float | None = None


_RENAMED: Final = {"id": "symbol", "time": "time_ms"}
_ATTR: Final[dict[str, str]] = {name: _RENAMED.get(name, name) for name, _, _ in proto.FIELDS}
"""proto field name -> :class:`Pricing` attribute."""
_PROTO: Final[tuple[tuple[str, str], ...]] = tuple((a, p) for p, a in _ATTR.items())
"""(:class:`Pricing` attribute, proto field name), in field-number order."""


def float32_value(x: float) -> float:
    """The shortest decimal that reads back to the same float32 as ``x``, as a float:
    314.7650146484375 -> 314.765, 94745.078125 -> 94745.08. (numpy's float32 ``str`` is the
    shortest round-trip form, Dragon4; inf and nan stay as they are.)"""
    return float(str(np.float32(x)))


def decode_pricing(payload: bytes) -> Pricing:
    """Decode one ``PricingData`` protobuf. Raises :class:`StreamFrameError` when the bytes do
    not parse or carry no symbol."""
    msg = proto.PricingData()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise StreamFrameError(
            f"streamer frame: the message is not a PricingData protobuf ({exc})",
            reason="bad_protobuf",
            excerpt=payload[:40].hex(),
        ) from None
    fields: dict[str, Any] = {}
    floats = proto.FLOAT32_FIELDS
    for field, value in msg.ListFields():
        name = field.name
        fields[_ATTR[name]] = float32_value(value) if name in floats else value
    if not fields.get("symbol"):
        raise StreamFrameError(
            "streamer frame: PricingData without an id (symbol); frame skipped",
            reason="no_symbol",
            excerpt=payload[:40].hex(),
        )
    return Pricing(**fields)


def encode_pricing(pricing: Pricing, *, components: str | None = None) -> bytes:
    """The ``PricingData`` bytes of ``pricing``: every field that is not ``None``, and
    ``market_hours`` unless it is PRE. ``components`` appends the undeclared field 34."""
    kwargs: dict[str, Any] = {}
    for attr, name in _PROTO:
        value = getattr(pricing, attr)
        if value is not None:
            kwargs[name] = value
    if kwargs.get("market_hours") == MarketHours.PRE:
        del kwargs["market_hours"]
    out: bytes = proto.PricingData(**kwargs).SerializeToString()
    if components is not None:
        out += _length_delimited(proto.COMPONENTS_FIELD, components.encode())
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _length_delimited(number: int, data: bytes) -> bytes:
    """A field of wire type 2 (string/bytes) the message class does not declare."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data
