"""The streamer's text frames (``wss://streamer.finance.yahoo.com/?version=2``).

Server -> client: ``{"type":"pricing","message":"<base64 PricingData>"}``. :func:`decode_frame`
turns one into a :class:`~engine.source.stream.pricing.Pricing`, returns ``None`` for a frame
whose ``type`` is present and is not ``pricing`` (nobody has seen another type; ignoring it is
what the reference clients do: they read ``message`` only), and raises
:class:`~engine.errors.StreamFrameError` for anything that does not decode. A frame without
``type`` is read as pricing.

Client -> server: ``{"subscribe": [...]}`` and ``{"unsubscribe": [...]}``
(:func:`subscribe_frame`, :func:`unsubscribe_frame`). Yahoo closes the socket on anything else,
a ``null`` symbol included, so they take strings only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Final

import msgspec

from engine.errors import StreamFrameError
from engine.source.stream.pricing import Pricing, decode_pricing, encode_pricing

PRICING: Final = "pricing"
_EXCERPT: Final = 80


class Envelope(msgspec.Struct, frozen=True):
    """A server frame as JSON; other keys are ignored."""

    type: str | None = None
    message: str | None = None


_envelope: Final = msgspec.json.Decoder(Envelope)
_encoder: Final = msgspec.json.Encoder()


def _excerpt(data: str | bytes) -> str:
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    return text[:_EXCERPT]


def decode_frame(data: str | bytes) -> Pricing | None:
    """One server frame -> its pricing, or ``None`` for a frame of another ``type``."""
    try:
        env = _envelope.decode(data)
    except msgspec.DecodeError as exc:
        reason = "bad_envelope" if isinstance(exc, msgspec.ValidationError) else "not_json"
        raise StreamFrameError(
            f"streamer frame is not a pricing envelope ({exc}): {_excerpt(data)!r}",
            reason=reason,
            excerpt=_excerpt(data),
        ) from None
    if env.type is not None and env.type != PRICING:
        return None
    if not env.message:
        raise StreamFrameError(
            f"streamer frame has no message: {_excerpt(data)!r}",
            reason="bad_envelope",
            excerpt=_excerpt(data),
        )
    try:
        payload = base64.b64decode(env.message, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise StreamFrameError(
            f"streamer frame: message is not base64 ({exc}): {_excerpt(data)!r}",
            reason="bad_base64",
            excerpt=_excerpt(data),
        ) from None
    try:
        return decode_pricing(payload)
    except StreamFrameError as exc:  # name the frame as it came, not its protobuf bytes
        raise StreamFrameError(
            f"{exc}: {_excerpt(data)!r}", reason=exc.reason, excerpt=_excerpt(data)
        ) from None


def envelope(message: str, frame_type: str = PRICING) -> str:
    """``{"type": frame_type, "message": message}`` as text."""
    return _encoder.encode(Envelope(type=frame_type, message=message)).decode()


def encode_frame(pricing: Pricing, *, components: str | None = None) -> str:
    """The server frame carrying ``pricing`` (for the emulator and the tests)."""
    payload = encode_pricing(pricing, components=components)
    return envelope(base64.b64encode(payload).decode("ascii"))


def _symbols(symbols: Iterable[str]) -> list[str]:
    out = list(symbols)
    bad = [s for s in out if not isinstance(s, str) or not s]
    if bad:  # one null in the list and Yahoo drops the whole connection
        raise TypeError(f"streamer symbols must be non-empty strings, got {bad[:5]!r}")
    return out


def subscribe_frame(symbols: Iterable[str]) -> str:
    """``{"subscribe": [...]}``: Yahoo's subscription is cumulative."""
    return _encoder.encode({"subscribe": _symbols(symbols)}).decode()


def unsubscribe_frame(symbols: Iterable[str]) -> str:
    """``{"unsubscribe": [...]}``: frees the symbols' slots."""
    return _encoder.encode({"unsubscribe": _symbols(symbols)}).decode()
