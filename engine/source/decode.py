"""Decoding a ``/v7/finance/quote`` body into typed quotes.

The body is decoded straight into msgspec Structs: the envelope first, then each quote on its
own, so one malformed quote is rejected alone (:class:`MalformedQuote`) instead of poisoning its
batch. Requested symbols absent from the answer are unknown to Yahoo (``missing``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from engine.errors import UpstreamPayloadError
from engine.quote import YahooQuote


class _Raw(msgspec.Struct):
    result: list[msgspec.Raw] | None = None
    error: Any = None


class _QuoteEnvelope(msgspec.Struct, rename={"quote_response": "quoteResponse"}):
    quote_response: _Raw


class _SymbolOnly(msgspec.Struct):
    symbol: str


_envelope_decoder: Final = msgspec.json.Decoder(_QuoteEnvelope)
_quote_decoder: Final = msgspec.json.Decoder(YahooQuote)
_symbol_decoder: Final = msgspec.json.Decoder(_SymbolOnly)


class MalformedQuote(msgspec.Struct, frozen=True):
    symbol: str
    detail: str


class QuoteBatch(msgspec.Struct):
    """What one batch request produced."""

    quotes: list[YahooQuote]
    malformed: list[MalformedQuote]
    missing: list[str]  # requested, not in the response (unknown to Yahoo)
    attempts: int
    latency_s: float


def _malformed(raw: msgspec.Raw, exc: msgspec.MsgspecError) -> MalformedQuote:
    try:
        sym = _symbol_decoder.decode(raw).symbol
    except (msgspec.DecodeError, msgspec.ValidationError):
        sym = "?"
    return MalformedQuote(sym, str(exc)[:90])


def decode_quotes(body: bytes, requested: Sequence[str], url: str = "") -> QuoteBatch:
    """Decode a v7 body; quotes that do not decode are reported, not raised."""
    try:
        env = _envelope_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamPayloadError(f"malformed v7 quote body: {exc}", url=url) from exc
    if env.quote_response.error is not None:
        raise UpstreamPayloadError(f"v7 quote error: {env.quote_response.error!r}"[:200], url=url)
    quotes: list[YahooQuote] = []
    malformed: list[MalformedQuote] = []
    for raw in env.quote_response.result or ():
        try:
            quotes.append(_quote_decoder.decode(raw))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            malformed.append(_malformed(raw, exc))
    seen = {q.symbol for q in quotes}
    seen.update(m.symbol for m in malformed)
    missing = [s for s in requested if s not in seen]
    return QuoteBatch(quotes, malformed, missing, attempts=1, latency_s=0.0)
