"""Quotes for the store tests."""

from __future__ import annotations

import uuid

from engine.quote import Quote

NOW = 1_790_000_000  # a fixed instant (2026-09-21)


def make_quote(symbol: str = "AAA", t: int = NOW, price: float = 100.0, **kw: object) -> Quote:
    fields: dict[str, object] = {
        "symbol": symbol,
        "price": price,
        "volume": 1000,
        "change_percent": 0.5,
        "market_time": t,
        "market_state": "REGULAR",
        "currency": "USD",
        "exchange": "NMS",
        "source": "test",
        "ingest_time_ns": t * 1_000_000_000,
        "correlation_id": str(uuid.UUID(int=7)),
    }
    fields.update(kw)
    return Quote(**fields)  # type: ignore[arg-type]
