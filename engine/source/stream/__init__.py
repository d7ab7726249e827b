"""Yahoo's websocket streamer: the wire schema (:mod:`.proto`), the ``PricingData`` codec
(:mod:`.pricing`) and the text frames (:mod:`.frames`)."""

from engine.source.stream.frames import decode_frame, subscribe_frame, unsubscribe_frame
from engine.source.stream.pricing import MarketHours, Pricing, QuoteType

__all__ = [
    "MarketHours",
    "Pricing",
    "QuoteType",
    "decode_frame",
    "subscribe_frame",
    "unsubscribe_frame",
]
