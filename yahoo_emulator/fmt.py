"""``formatted=true`` rendering: numbers become ``{raw, fmt}`` objects (``longFmt`` for big ints).

Shapes follow the v7 quote spec of pasdam/yahoo-finance-openapi: prices
``{"raw": 4019.87, "fmt": "4019.87"}`` (``priceHint`` decimals), percent-unit fields
``{"raw": 1.18, "fmt": "1.18%"}``, fraction-unit fields ``{"raw": 0.56, "fmt": "56.14%"}``,
volumes ``{"raw": 2165457735, "fmt": "2.165B", "longFmt": "2,165,457,735"}``, market times
``{"raw": 1617311722, "fmt": "5:15PM EDT"}``, ranges ``{"raw": "a - b", "fmt": "a - b"}``.
Strings, booleans, lists and the housekeeping integers (``priceHint``,
``gmtOffSetMilliseconds``, ``sourceInterval``, ``exchangeDataDelayedBy``,
``firstTradeDateMilliseconds``) stay plain. Shared by every endpoint that has a ``formatted``
switch (quoteSummary will reuse it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final
from zoneinfo import ZoneInfo

NY: Final = ZoneInfo("America/New_York")

PLAIN: Final = frozenset(
    {
        "priceHint",
        "gmtOffSetMilliseconds",
        "sourceInterval",
        "exchangeDataDelayedBy",
        "firstTradeDateMilliseconds",
    }
)
PERCENT: Final = frozenset(
    {
        "regularMarketChangePercent",
        "preMarketChangePercent",
        "postMarketChangePercent",
        "fiftyTwoWeekChangePercent",
        "dividendYield",
    }
)
FRACTION: Final = frozenset(
    {
        "fiftyTwoWeekLowChangePercent",
        "fiftyTwoWeekHighChangePercent",
        "fiftyDayAverageChangePercent",
        "twoHundredDayAverageChangePercent",
        "trailingAnnualDividendYield",
    }
)
LARGE: Final = frozenset(
    {
        "regularMarketVolume",
        "averageDailyVolume3Month",
        "averageDailyVolume10Day",
        "marketCap",
        "sharesOutstanding",
        "bidSize",
        "askSize",
    }
)
CLOCK_TIME: Final = frozenset({"regularMarketTime", "preMarketTime", "postMarketTime"})
DATE_TIME: Final = frozenset(
    {
        "dividendDate",
        "earningsTimestamp",
        "earningsTimestampStart",
        "earningsTimestampEnd",
        "earningsCallTimestampStart",
        "earningsCallTimestampEnd",
    }
)
RANGE: Final = frozenset({"regularMarketDayRange", "fiftyTwoWeekRange"})


def abbreviate(value: float) -> str:
    """``40896227`` -> ``40.896M``; ``510380`` -> ``510.38k``; small numbers as they are."""
    a = abs(value)
    for div, suffix, digits in ((1e12, "T", 3), (1e9, "B", 3), (1e6, "M", 3), (1e3, "k", 2)):
        if a >= div:
            return f"{value / div:.{digits}f}{suffix}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def clock_fmt(epoch: int) -> str:
    """``1617311722`` -> ``5:15PM EDT`` (New York)."""
    local = dt.datetime.fromtimestamp(epoch, NY)
    return f"{local.strftime('%I:%M%p').lstrip('0')} {local.tzname()}"


def date_fmt(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d")


def _range_fmt(text: str, digits: int) -> str:
    parts = text.split(" - ")
    try:
        return " - ".join(f"{float(p):.{digits}f}" for p in parts)
    except ValueError:
        return text


def format_value(key: str, value: Any, price_hint: int) -> Any:
    """One field in its ``formatted=true`` form."""
    if key in RANGE and isinstance(value, str):
        return {"raw": value, "fmt": _range_fmt(value, price_hint)}
    if isinstance(value, bool) or not isinstance(value, int | float) or key in PLAIN:
        return value
    if key in CLOCK_TIME:
        return {"raw": value, "fmt": clock_fmt(int(value))}
    if key in DATE_TIME:
        return {"raw": value, "fmt": date_fmt(int(value))}
    if key in PERCENT:
        return {"raw": value, "fmt": f"{value:.2f}%"}
    if key in FRACTION:
        return {"raw": value, "fmt": f"{value * 100:.2f}%"}
    if key in LARGE:
        return {"raw": value, "fmt": abbreviate(value), "longFmt": f"{int(value):,}"}
    return {"raw": value, "fmt": f"{value:.{price_hint}f}"}


def format_quote(quote: dict[str, Any], price_hint: int) -> dict[str, Any]:
    return {k: format_value(k, v, price_hint) for k, v in quote.items()}
