"""Decoding a ``/v7/finance/quote`` body into typed quotes.

The body is decoded straight into msgspec Structs: the envelope first, then each quote on its
own, so one malformed quote is rejected alone (:class:`MalformedQuote`) instead of poisoning its
batch. Requested symbols absent from the answer are unknown to Yahoo (``missing``).

Poison the whole body would otherwise carry:

* ``NaN`` / ``Infinity`` / ``-Infinity`` literal tokens are not JSON and msgspec refuses the
  envelope; when the body does not decode, such tokens (outside strings) are quoted and the body
  decoded again, so only the quote holding one in a field we read fails (``malformed``, the
  detail naming the field) while a token in a field we ignore costs nothing.
* A quote for a symbol the request did not ask for is rejected as ``unrequested_symbol`` (a
  300-character symbol must not be cut to fit and published as another one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from engine.errors import UpstreamPayloadError
from engine.quote import RejectReason, YahooQuote


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


_NON_JSON_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|-?Infinity|NaN')
"""A JSON string (left as it is) or a non-JSON number literal (quoted by :func:`_quote_tokens`)."""
_NON_JSON_TOKEN_QUOTED: Final = re.compile(rb'"(?:-?Infinity|NaN)"')


def _quote_tokens(body: bytes) -> bytes:
    """``NaN``/``Infinity``/``-Infinity`` outside strings become the strings ``"NaN"``..."""
    return _NON_JSON_TOKEN.sub(
        lambda m: m[0] if m[0].startswith(b'"') else b'"' + m[0] + b'"', body
    )


class MalformedQuote(msgspec.Struct, frozen=True):
    """A quote of the answer that is rejected before validation (it did not decode, or was not
    asked for)."""

    symbol: str
    detail: str
    reason: RejectReason = RejectReason.MALFORMED


class QuoteBatch(msgspec.Struct):
    """What one batch request produced."""

    quotes: list[YahooQuote]
    malformed: list[MalformedQuote]
    missing: list[str]  # requested, not in the response (unknown to Yahoo)
    attempts: int
    latency_s: float


def _malformed(raw: msgspec.Raw, exc: msgspec.MsgspecError, tokens: bool) -> MalformedQuote:
    try:
        sym = _symbol_decoder.decode(raw).symbol
    except (msgspec.DecodeError, msgspec.ValidationError):
        sym = "?"
    detail = str(exc)
    if tokens and _NON_JSON_TOKEN_QUOTED.search(bytes(raw)):
        detail = f"NaN/Infinity literal: {detail}"
    return MalformedQuote(sym, detail[:90])


def decode_quotes(body: bytes, requested: Sequence[str], url: str = "") -> QuoteBatch:
    """Decode a v7 body; quotes that do not decode are reported, not raised."""
    tokens = False
    try:
        env = _envelope_decoder.decode(body)
    except msgspec.DecodeError as exc:
        tokens = True
        try:  # NaN/Infinity literals: quoted, so only the quotes holding them fail
            env = _envelope_decoder.decode(_quote_tokens(body))
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise UpstreamPayloadError(f"malformed v7 quote body: {exc}", url=url) from exc
    except msgspec.ValidationError as exc:
        raise UpstreamPayloadError(f"malformed v7 quote body: {exc}", url=url) from exc
    if env.quote_response.error is not None:
        raise UpstreamPayloadError(f"v7 quote error: {env.quote_response.error!r}"[:200], url=url)
    quotes: list[YahooQuote] = []
    malformed: list[MalformedQuote] = []
    asked = set(requested)
    for raw in env.quote_response.result or ():
        try:
            q = _quote_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            malformed.append(_malformed(raw, exc, tokens))
            continue
        if q.symbol in asked:
            quotes.append(q)
        else:
            detail = f"symbol {q.symbol[:40]!r} ({len(q.symbol)} chars) not in the request"
            malformed.append(MalformedQuote(q.symbol, detail, RejectReason.UNREQUESTED_SYMBOL))
    seen = {q.symbol for q in quotes}
    seen.update(m.symbol for m in malformed)
    missing = [s for s in requested if s not in seen]
    return QuoteBatch(quotes, malformed, missing, attempts=1, latency_s=0.0)
