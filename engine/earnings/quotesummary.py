"""The quoteSummary source: the per-symbol calendar fallback and the fundamentals.

Fallback - quoteSummary ``calendarEvents`` (+ ``price`` for the name), one request per symbol
of our universe: :meth:`QuoteSummarySource.fetch_calendar_events`. It gives the next date
only, no reported EPS, and ``isEarningsDateEstimate`` windows (-> ``TMC``); the timing of a
confirmed date is derived from its New York time of day.

Fundamentals - quoteSummary ``defaultKeyStatistics,financialData,earnings``:
:func:`parse_fundamentals` reads trailing/forward EPS, revenue, gross/operating/profit margins
and the latest quarter's EPS estimate and actual, each value through
:func:`~engine.earnings.values.lenient` (``{raw, fmt}``, ``{}``, strings). A 404 (unknown
symbol, or none of the modules has data) is "no data", not an error.

Requests go through the calendar's :class:`~engine.source.client.YahooClient` (same session,
limiter, breaker and retries).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec

from engine.earnings.models import (
    SOURCE_QUOTE_SUMMARY,
    CalendarCollector,
    CalendarFetch,
    CalendarPage,
    Clock,
    EarningsEvent,
    Fundamentals,
    utcnow,
)
from engine.earnings.values import NY, BadValue, lenient, parse_instant, text, timing_from_clock
from engine.errors import UpstreamError, UpstreamPayloadError, UpstreamStatusError
from engine.source.client import YahooClient
from engine.source.transport import HttpResponse

log = logging.getLogger(__name__)

QUOTE_SUMMARY_PATH: Final = "/v10/finance/quoteSummary/"
FUNDAMENTAL_MODULES: Final = "defaultKeyStatistics,financialData,earnings"


def _module(result: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    m = result.get(name)
    return m if isinstance(m, Mapping) else {}


def _summary_result(body: bytes, url: str) -> Mapping[str, Any]:
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamPayloadError(f"malformed quoteSummary body: {exc}", url=url) from exc
    qs = doc.get("quoteSummary") if isinstance(doc, dict) else None
    if not isinstance(qs, dict):
        raise UpstreamPayloadError("quoteSummary answer without the envelope", url=url)
    if qs.get("error"):
        raise UpstreamPayloadError(f"quoteSummary error: {qs['error']!r}"[:200], url=url)
    results = qs.get("result")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise UpstreamPayloadError("quoteSummary answer has no result", url=url)
    out: Mapping[str, Any] = results[0]
    return out


def _first(*values: Any) -> float | None:
    for v in values:
        n = lenient(v)
        if n is not None:
            return n
    return None


def _latest_quarter(earnings: Mapping[str, Any]) -> Mapping[str, Any]:
    chart = _module(earnings, "earningsChart")
    quarterly = chart.get("quarterly")
    if isinstance(quarterly, list) and quarterly and isinstance(quarterly[-1], Mapping):
        latest: Mapping[str, Any] = quarterly[-1]
        return latest
    return {}


def parse_fundamentals(
    symbol: str, body: bytes, *, fetched_at: dt.datetime, url: str = ""
) -> Fundamentals:
    """quoteSummary ``defaultKeyStatistics,financialData,earnings`` -> :class:`Fundamentals`."""
    result = _summary_result(body, url)
    stats = _module(result, "defaultKeyStatistics")
    fin = _module(result, "financialData")
    quarter = _latest_quarter(_module(result, "earnings"))
    currency = fin.get("financialCurrency")
    label = quarter.get("date")
    return Fundamentals(
        symbol=symbol,
        fetched_at=fetched_at,
        eps_trailing=lenient(stats.get("trailingEps")),
        eps_forward=lenient(stats.get("forwardEps")),
        revenue=lenient(fin.get("totalRevenue")),
        gross_margin=lenient(fin.get("grossMargins")),
        operating_margin=lenient(fin.get("operatingMargins")),
        profit_margin=_first(fin.get("profitMargins"), stats.get("profitMargins")),
        currency=currency if isinstance(currency, str) and currency else None,
        latest_quarter=str(label) if isinstance(label, str | int) and label != "" else None,
        latest_quarter_eps_estimate=lenient(quarter.get("estimate")),
        latest_quarter_eps_actual=lenient(quarter.get("actual")),
    )


def parse_calendar_events(symbol: str, body: bytes, *, url: str = "") -> EarningsEvent | None:
    """quoteSummary ``calendarEvents,price`` -> the next earnings event (None if none)."""
    result = _summary_result(body, url)
    earnings = _module(_module(result, "calendarEvents"), "earnings")
    dates = earnings.get("earningsDate")
    if not isinstance(dates, list) or not dates:
        return None
    try:
        start = parse_instant(dates[0])
    except BadValue:
        return None
    estimated = bool(earnings.get("isEarningsDateEstimate")) or len(dates) > 1
    price = _module(result, "price")
    cap = lenient(price.get("marketCap"))
    return EarningsEvent(
        symbol=symbol,
        event_date=start.astimezone(NY).date(),
        event_time=start,
        timing="TMC" if estimated else timing_from_clock(start),
        company_name=text(price.get("shortName") or price.get("longName")),
        market_cap=int(cap) if cap is not None and cap > 0 else None,
        eps_estimate=lenient(earnings.get("earningsAverage")) or None,
        source=SOURCE_QUOTE_SUMMARY,
    )


def _is_not_found(exc: UpstreamError) -> bool:
    return isinstance(exc, UpstreamStatusError) and exc.status == 404


class QuoteSummarySource:
    """quoteSummary calls: fundamentals, and the per-symbol calendar fallback."""

    def __init__(self, client: YahooClient, *, concurrency: int = 4, clock: Clock = utcnow) -> None:
        self.client = client
        self.concurrency = max(1, concurrency)
        self.clock = clock

    def _url(self, symbol: str) -> str:
        return self.client.endpoints.query2 + QUOTE_SUMMARY_PATH + symbol

    async def _get(self, symbol: str, modules: str, parse: Callable[[HttpResponse], Any]) -> Any:
        params = {
            "modules": modules,
            "formatted": "false",
            "lang": "en-US",
            "region": "US",
            "corsDomain": "finance.yahoo.com",
        }
        value, _ = await self.client.get_with_retries(self._url(symbol), params, parse)
        return value

    async def fundamentals(self, symbol: str) -> Fundamentals:
        """Fundamentals of one symbol; ``available=False`` on Yahoo's 404."""
        fetched_at = self.clock()
        try:
            value: Fundamentals = await self._get(
                symbol,
                FUNDAMENTAL_MODULES,
                lambda r: parse_fundamentals(symbol, r.body, fetched_at=fetched_at, url=r.url),
            )
        except UpstreamError as exc:
            if _is_not_found(exc):
                return Fundamentals(symbol=symbol, fetched_at=fetched_at, available=False)
            raise
        return value

    async def many_fundamentals(
        self, symbols: Iterable[str]
    ) -> tuple[list[Fundamentals], dict[str, UpstreamError]]:
        """Fundamentals of many symbols (bounded concurrency); failures by symbol."""
        ok: list[Fundamentals] = []
        failed: dict[str, UpstreamError] = {}
        await self._each(symbols, self.fundamentals, ok, failed)
        return ok, failed

    async def fetch_calendar_events(
        self, symbols: Iterable[str], start: dt.date, end: dt.date
    ) -> CalendarFetch:
        """The fallback calendar: the next event of each symbol, kept if in ``[start, end]``.

        Raises the first :class:`UpstreamError` other than 404 (a partial fallback calendar
        would silently lose events).
        """
        found: list[EarningsEvent | None] = []
        failed: dict[str, UpstreamError] = {}
        symbols = list(symbols)

        async def one(symbol: str) -> EarningsEvent | None:
            try:
                ev: EarningsEvent | None = await self._get(
                    symbol,
                    "calendarEvents,price",
                    lambda r: parse_calendar_events(symbol, r.body, url=r.url),
                )
            except UpstreamError as exc:
                if _is_not_found(exc):
                    return None
                raise
            return ev

        await self._each(symbols, one, found, failed)
        if failed:
            sym, exc = next(iter(failed.items()))
            log.warning(
                "earnings_fallback_incomplete",
                extra={"failed": len(failed), "example": sym, "error_kind": exc.kind},
            )
            raise exc
        acc = CalendarCollector(start, end, SOURCE_QUOTE_SUMMARY)
        acc.add(CalendarPage([e for e in found if e is not None], [], [], len(symbols), None))
        acc.out.requests = len(symbols)
        acc.out.pages = 0
        return acc.out

    async def _each(
        self,
        symbols: Iterable[str],
        call: Callable[[str], Any],
        ok: list[Any],
        failed: dict[str, UpstreamError],
    ) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for s in symbols:
            queue.put_nowait(s)

        async def worker() -> None:
            while not queue.empty():
                symbol = queue.get_nowait()
                try:
                    ok.append(await call(symbol))
                except UpstreamError as exc:
                    failed[symbol] = exc

        workers = min(self.concurrency, queue.qsize())
        await asyncio.gather(*(worker() for _ in range(workers)))
