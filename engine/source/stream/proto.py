"""The wire schema of Yahoo's websocket streamer: the ``PricingData`` protobuf message, built in
code (no ``.proto`` file, no protoc, no generated ``_pb2`` module).

The field table follows yfinance's ``pricing.proto`` (proto3, fields 1-33; the fact sheet
``yahoo-api.md`` section 4). What matters on the wire:

* every 64-bit integer is ``sint64`` (zigzag): read as plain ``int64`` it comes out doubled;
* prices and percentages are ``float`` (float32), ``circulating_supply``/``market_cap`` double;
* ``market_hours`` is the enum :data:`MARKET_HOURS` (PRE_MARKET = 0 is the proto3 default, so a
  pre-market frame usually carries no ``market_hours`` at all). proto3 enums are open: a value
  the enum does not declare (Yahoo sent 4 overnight) is kept as its number, not rejected;
* Yahoo's own bundle also has field 34 ``components`` (string): it is deliberately *not*
  declared here, so decoding skips it like any unknown field (:data:`COMPONENTS_FIELD`).

Every field is declared ``optional`` (proto3 explicit presence). The bytes on the wire are the
same as without it, but a decoder can tell a field that was sent (even as 0, which Yahoo does
for ``market_hours``) from one that was not: ``day_high``/``day_low`` come only when they
change, ``day_volume`` not at all after the close.

The message class is made once, at import, in a private descriptor pool (so it can never clash
with another ``PricingData`` a library registers in the default pool).
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto

PACKAGE: Final = "ingestion.yahoo.streamer"
MESSAGE: Final = "PricingData"

MARKET_HOURS: Final[tuple[tuple[str, int], ...]] = (
    ("PRE_MARKET", 0),
    ("REGULAR_MARKET", 1),
    ("POST_MARKET", 2),
    ("EXTENDED_HOURS_MARKET", 3),
)
"""The ``MarketHours`` enum (yliveticker ``yaticker.proto``)."""

_ENUM: Final = "MarketHours"

FIELDS: Final[tuple[tuple[str, int, int], ...]] = (
    ("id", 1, _F.TYPE_STRING),
    ("price", 2, _F.TYPE_FLOAT),
    ("time", 3, _F.TYPE_SINT64),  # epoch milliseconds
    ("currency", 4, _F.TYPE_STRING),
    ("exchange", 5, _F.TYPE_STRING),
    ("quote_type", 6, _F.TYPE_INT32),  # EQUITY 8, CRYPTOCURRENCY 41, ...
    ("market_hours", 7, _F.TYPE_ENUM),
    ("change_percent", 8, _F.TYPE_FLOAT),  # percent units
    ("day_volume", 9, _F.TYPE_SINT64),
    ("day_high", 10, _F.TYPE_FLOAT),
    ("day_low", 11, _F.TYPE_FLOAT),
    ("change", 12, _F.TYPE_FLOAT),
    ("short_name", 13, _F.TYPE_STRING),
    ("expire_date", 14, _F.TYPE_SINT64),
    ("open_price", 15, _F.TYPE_FLOAT),
    ("previous_close", 16, _F.TYPE_FLOAT),
    ("strike_price", 17, _F.TYPE_FLOAT),
    ("underlying_symbol", 18, _F.TYPE_STRING),
    ("open_interest", 19, _F.TYPE_SINT64),
    ("options_type", 20, _F.TYPE_SINT64),
    ("mini_option", 21, _F.TYPE_SINT64),
    ("last_size", 22, _F.TYPE_SINT64),
    ("bid", 23, _F.TYPE_FLOAT),
    ("bid_size", 24, _F.TYPE_SINT64),
    ("ask", 25, _F.TYPE_FLOAT),
    ("ask_size", 26, _F.TYPE_SINT64),
    ("price_hint", 27, _F.TYPE_SINT64),
    ("vol_24hr", 28, _F.TYPE_SINT64),
    ("vol_all_currencies", 29, _F.TYPE_SINT64),
    ("from_currency", 30, _F.TYPE_STRING),
    ("last_market", 31, _F.TYPE_STRING),
    ("circulating_supply", 32, _F.TYPE_DOUBLE),
    ("market_cap", 33, _F.TYPE_DOUBLE),
)
"""(name, number, wire type) of every declared field, in number order."""

FLOAT32_FIELDS: Final = frozenset(name for name, _, t in FIELDS if t == _F.TYPE_FLOAT)

COMPONENTS_FIELD: Final = 34
"""Field ``components`` (string) of Yahoo's bundle: on the wire sometimes, never declared here."""


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The ``.proto`` file as a descriptor: one enum, one message, every field optional."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="ingestion/yahoo_streamer.proto", package=PACKAGE, syntax="proto3"
    )
    enum = fdp.enum_type.add(name=_ENUM)
    for name, number in MARKET_HOURS:
        enum.value.add(name=name, number=number)
    msg = fdp.message_type.add(name=MESSAGE)
    for index, (name, number, wire_type) in enumerate(FIELDS):
        msg.oneof_decl.add(name=f"_{name}")  # the synthetic oneof of a proto3 `optional`
        field = msg.field.add(
            name=name,
            number=number,
            type=wire_type,
            label=_F.LABEL_OPTIONAL,
            oneof_index=index,
            proto3_optional=True,
        )
        if wire_type == _F.TYPE_ENUM:
            field.type_name = f".{PACKAGE}.{_ENUM}"
    return fdp


def _message_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{MESSAGE}"))


PricingData: Final[Any] = _message_class()
"""The protobuf message class (``PricingData()``, ``.ParseFromString``, ``.SerializeToString``).
Use :mod:`engine.source.stream.pricing` rather than this class directly."""
