"""``GET /v1/finance/screener/predefined/saved``: the predefined screens yfinance relies on.

``yf.Calendars().get_earnings_calendar()`` first asks ``screen("MOST_ACTIVES", count=200)`` and
restricts the calendar to those tickers, so the emulator serves that screen
(and ``DAY_GAINERS``/``DAY_LOSERS``): ``scrIds`` (case-insensitive), ``count`` (1-250, default
25; more is a 400 envelope, as yfinance warns), ``offset``; crumb required. Answer:
``{"finance": {"result": [{"id", "title", "canonicalName", "start", "count", "total",
"quotes": [{symbol, shortName, longName, quoteType, exchange, marketCap, regularMarketPrice,
regularMarketChangePercent, regularMarketVolume}]}], "error": null}}``.

Ranking uses the universe's static last-session volume and percent change (not the live walk),
so which tickers are "most active" is the same for every request - tests can predict it with
:func:`most_active`.
"""

from __future__ import annotations

import functools
from typing import Any, Final, Protocol

import numpy as np
import orjson
from aiohttp import web

from yahoo_emulator.auth import AuthStore, cookie_from_header
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.responses import CACHE_QUOTE, error_response, json_response, unauthorized
from yahoo_emulator.universe import Universe


class ScreenerView(Protocol):
    """What the predefined-screener handler uses of the emulator
    (:class:`.state.Emulator` has it all)."""

    @property
    def cfg(self) -> EmulatorConfig: ...

    @property
    def auth(self) -> AuthStore: ...

    @property
    def delisted(self) -> frozenset[str]: ...

    @property
    def universe(self) -> Universe: ...

    def now(self) -> float: ...


OP_SCREENERS: Final = "finance-screeners--mtls-production-emu.finance-k8s:4080/*"
MAX_COUNT: Final = 250
SCREENS: Final = {
    "most_actives": "Most Actives",
    "day_gainers": "Day Gainers",
    "day_losers": "Day Losers",
}


@functools.lru_cache(maxsize=32)
def ranking(
    universe: Universe, screen: str, exclude: frozenset[str] = frozenset()
) -> tuple[int, ...]:
    """Universe rows in the screen's order (ties broken by symbol)."""
    if screen == "most_actives":
        score = -universe.volume.astype(np.float64)
    elif screen == "day_gainers":
        score = -universe.pct_change
    else:
        score = universe.pct_change
    order = sorted(range(len(universe)), key=lambda i: (float(score[i]), universe.symbols[i]))
    return tuple(i for i in order if universe.symbols[i] not in exclude)


def most_active(universe: Universe, n: int, exclude: frozenset[str] = frozenset()) -> list[str]:
    """The ``n`` symbols ``MOST_ACTIVES`` lists first."""
    return [universe.symbols[i] for i in ranking(universe, "most_actives", exclude)[:n]]


def _quote(emu: ScreenerView, i: int) -> dict[str, Any]:
    u = emu.universe
    cap = int(u.market_cap[i])
    return {
        "symbol": u.symbols[i],
        "shortName": u.short_name[i],
        "longName": u.name[i],
        "quoteType": "EQUITY",
        "exchange": u.exchange[i],
        "marketCap": cap if cap else None,
        "regularMarketPrice": float(u.last_sale[i]),
        "regularMarketChangePercent": float(u.pct_change[i]),
        "regularMarketVolume": int(u.volume[i]),
    }


def _bad(description: str) -> web.Response:
    return error_response(400, "Bad Request", description, operation=OP_SCREENERS)


async def handle_predefined(emu: ScreenerView, request: web.Request) -> web.StreamResponse:
    cfg = emu.cfg
    q = request.query
    if cfg.require_auth:
        cookie = cookie_from_header(request.headers.get("Cookie"))
        problem = emu.auth.check(cookie, q.get("crumb"), emu.now(), cfg)
        if problem is not None:
            return unauthorized(problem)
    screen = q.get("scrIds", "").strip().lower()
    if screen not in SCREENS:
        return error_response(
            404, "Not Found", f"screener {q.get('scrIds', '')!r} not found", operation=OP_SCREENERS
        )
    try:
        count, offset = int(q.get("count", "25")), int(q.get("offset", "0"))
    except ValueError:
        return _bad("count and offset must be integers")
    if not 1 <= count <= MAX_COUNT or offset < 0:
        return _bad(f"count must be between 1 and {MAX_COUNT} and offset >= 0")
    rows = ranking(emu.universe, screen, emu.delisted)
    page = rows[offset : offset + count]
    result = {
        "id": screen,
        "title": SCREENS[screen],
        "canonicalName": screen.upper(),
        "start": offset,
        "count": len(page),
        "total": len(rows),
        "quotes": [_quote(emu, i) for i in page],
    }
    body = orjson.dumps({"finance": {"result": [result], "error": None}})
    return json_response(body, operation=OP_SCREENERS, cache=CACHE_QUOTE)
