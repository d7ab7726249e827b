"""Shared test data of the earnings unit tests: a fetch instant and an event factory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from engine.earnings.models import EarningsEvent

ROOT = Path(__file__).resolve().parents[3]
FETCHED = dt.datetime(2026, 11, 25, 16, 0, tzinfo=dt.UTC)  # 11:00 New York
D1, D2, D3 = dt.date(2026, 11, 25), dt.date(2026, 11, 27), dt.date(2026, 12, 1)


def ev(symbol: str, day: dt.date, hour: int = 21, **kw: Any) -> EarningsEvent:
    t = dt.datetime.combine(day, dt.time(hour, 5), dt.UTC)
    base: dict[str, Any] = {"timing": "AMC", "event_name": "Q3 2026 Earnings Release"}
    return EarningsEvent(symbol=symbol, event_date=day, event_time=t, **{**base, **kw})
