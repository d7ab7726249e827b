"""Poison quotes: extreme values a v7 answer can carry (knobs ``fault_poison_quote``,
``poison_kinds``, ``poison_symbols``).

A poisoned row gets its value before the row is serialised; ``NaN``/``Infinity``/``-Infinity``
are not JSON, so the row holds a sentinel string that :func:`raw_tokens` turns into the bare
token in the serialised bytes (``"regularMarketPrice":NaN``), as a broken upstream would send it.
"""

from __future__ import annotations

from typing import Any, Final

from yahoo_emulator.config import EmulatorConfig

LONG_SYMBOL_CHARS: Final = 300
_TOKENS: Final = {"NaN": b"NaN", "Infinity": b"Infinity", "-Infinity": b"-Infinity"}
_SENTINEL: Final = "@@poison:{}@@"


def _token(name: str) -> str:
    return _SENTINEL.format(name)


def poisoned_symbols(cfg: EmulatorConfig) -> dict[str, str]:
    """``poison_symbols`` as symbol -> kind (upper-cased symbols, like the request's)."""
    out: dict[str, str] = {}
    for entry in cfg.poison_symbols:
        sym, _, kind = entry.partition("=")
        out[sym.upper()] = kind
    return out


def long_symbol(symbol: str) -> str:
    return (symbol + "-").ljust(LONG_SYMBOL_CHARS, "X")


def poison(row: dict[str, Any], kind: str, symbol: str) -> None:
    """Give ``row`` (one quote's dynamic fields) the extreme value of ``kind``."""
    if kind == "ancient_time":
        row["regularMarketTime"] = -(2**62)
    elif kind == "huge_time":
        row["regularMarketTime"] = 2**63
    elif kind == "huge_volume":
        row["regularMarketVolume"] = 2**63
    elif kind == "nan_price":
        row["regularMarketPrice"] = _token("NaN")
    elif kind == "inf_price":
        row["regularMarketPrice"] = _token("Infinity")
    elif kind == "neg_inf_change":
        row["regularMarketChangePercent"] = _token("-Infinity")
    elif kind == "max_price":
        row["regularMarketPrice"] = 1e308
    elif kind == "long_symbol":
        row["symbol"] = long_symbol(symbol)  # serialised after the real one: the last one wins


def raw_tokens(body: bytes) -> bytes:
    """The sentinel strings of :func:`poison` as bare ``NaN``/``Infinity``/``-Infinity``."""
    if b"@@poison:" not in body:
        return body
    for name, token in _TOKENS.items():
        body = body.replace(b'"' + _token(name).encode() + b'"', token)
    return body
