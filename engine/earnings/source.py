"""Earnings data from Yahoo: the calendar (primary), quoteSummary (fallback, fundamentals).

Primary source - ``POST /v1/finance/visualization`` with ``entityIdType: sp_earnings``
(docs/earnings-sources.md explains the choice). :class:`EarningsCalendarFetcher` asks for the
whole US calendar between two New York dates - no "most active" ticker filter, unlike
yfinance's default - in pages of ``page_size`` (<= 100) rows, ``offset`` advancing by the rows
received until ``total`` is reached. Each page is parsed by :func:`parse_calendar_page`:

* Columns are matched by ``id`` (the ``includeFields`` name), else by ``label``; never by
  position. The two columns labelled "Event Start Date" are told apart by type: ``STRING`` is
  the timing code, the other the start instant. Extra columns are ignored; a missing optional
  column gives ``None`` values; a missing ``ticker`` or ``startdatetime`` column fails the page.
* Timing codes: ``BMO`` (before market open), ``AMC`` (after market close), ``DMH`` (during
  market hours), ``TMC`` (time not confirmed). ``TNS``/empty/missing mean "not supplied" and
  become ``TMC``; ``TAS`` ("time as specified") is derived from the New York time of the start
  instant; any other code becomes ``TMC`` with a warning.
* Numbers may arrive as JSON numbers, numeric strings or ``{raw, fmt}`` objects; ``{}``,
  ``null``, ``"NaN"`` and ``"-"`` are missing. A non-numeric value in an optional column nulls
  that field with a warning; a row with no usable symbol or start instant, or of the wrong
  length, is rejected with its reason.
* Zero (fact sheet §1.7: yfinance treats 0.0 as missing). An EPS *estimate* of exactly 0 is
  taken as missing (a consensus of exactly $0.00 is rare; a fake 0 would make every surprise
  infinite). A *reported* EPS of 0 is kept only when it cannot be a placeholder: the event has
  started and the row carries a non-zero surprise (a genuine $0.00 against a non-zero estimate
  is a -100 % surprise). Otherwise 0 means "not reported yet"; so does any reported EPS with no
  value. The surprise is kept only alongside a reported EPS.
* The event date is the New York date of the start instant, except that an unconfirmed
  (``TMC``) start at exactly 00:00 UTC is read as a bare date. Rows are de-duplicated on
  (symbol, date) - a row seen twice because the order shifted between two pages counts once;
  rows outside the requested dates are dropped (counted).
* The request sorts like yfinance's known-good body (``intradaymarketcap`` DESC).

Fallback - quoteSummary ``calendarEvents`` (+ ``price`` for the name), one request per symbol
of our universe: :class:`QuoteSummarySource.fetch_calendar_events`. It gives the next date
only, no reported EPS, and ``isEarningsDateEstimate`` windows (-> ``TMC``); the timing of a
confirmed date is derived from its New York time of day.

Fundamentals - quoteSummary ``defaultKeyStatistics,financialData,earnings``:
:func:`parse_fundamentals` reads trailing/forward EPS, revenue, gross/operating/profit margins
and the latest quarter's EPS estimate and actual, each value through :func:`number`
(``{raw, fmt}``, ``{}``, strings). A 404 (unknown symbol, or none of the modules has data) is
"no data", not an error.

Everything network-bound goes through :class:`~engine.source.client.YahooClient` (crumb, the shared
rate
limiter and breaker, retries); failures surface as :class:`~engine.errors.UpstreamError`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import msgspec

from engine.errors import UpstreamError, UpstreamPayloadError, UpstreamStatusError
from engine.source.client import YahooClient
from engine.source.notation import check_symbol
from engine.source.transport import HttpResponse

log = logging.getLogger(__name__)

NY: Final = ZoneInfo("America/New_York")
VISUALIZATION_PATH: Final = "/v1/finance/visualization"
QUOTE_SUMMARY_PATH: Final = "/v10/finance/quoteSummary/"
SOURCE_CALENDAR: Final = "yahoo_calendar"
SOURCE_QUOTE_SUMMARY: Final = "yahoo_quotesummary"
FUNDAMENTAL_MODULES: Final = "defaultKeyStatistics,financialData,earnings"
INCLUDE_FIELDS: Final = (
    "ticker", "companyshortname", "intradaymarketcap", "eventname", "startdatetime",
    "startdatetimetype", "epsestimate", "epsactual", "epssurprisepct",
)  # fmt: skip

Timing = Literal["BMO", "AMC", "DMH", "TMC"]
Field = Literal[
    "symbol", "company_name", "market_cap", "event_name", "start", "timing",
    "eps_estimate", "eps_reported", "surprise_pct",
]  # fmt: skip
REQUIRED: Final[frozenset[Field]] = frozenset({"symbol", "start"})
BY_ID: Final[dict[str, Field]] = {
    "ticker": "symbol",
    "companyshortname": "company_name",
    "intradaymarketcap": "market_cap",
    "eventname": "event_name",
    "startdatetime": "start",
    "startdatetimetype": "timing",
    "epsestimate": "eps_estimate",
    "epsactual": "eps_reported",
    "epssurprisepct": "surprise_pct",
}
BY_LABEL: Final[dict[str, Field]] = {
    "symbol": "symbol",
    "company name": "company_name",
    "company": "company_name",
    "market cap (intraday)": "market_cap",
    "marketcap": "market_cap",
    "event name": "event_name",
    "timing": "timing",
    "eps estimate": "eps_estimate",
    "reported eps": "eps_reported",
    "surprise (%)": "surprise_pct",
    "surprise(%)": "surprise_pct",
}
_KNOWN_TIMING: Final[frozenset[str]] = frozenset({"BMO", "AMC", "DMH", "TMC"})
_NOT_SUPPLIED: Final = frozenset({"", "TNS", "TBD", "N/A"})
_MISSING_TEXT: Final = frozenset({"", "-", "--", "nan", "null", "none", "n/a", "infinity"})
_OPEN: Final = dt.time(9, 30)
_CLOSE: Final = dt.time(16, 0)


# -- models ------------------------------------------------------------------------------------


class EarningsEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One earnings report as the engine keeps it."""

    symbol: str
    event_date: dt.date  # New York date of event_time
    event_time: dt.datetime  # UTC; a placeholder when timing is TMC
    timing: Timing
    company_name: str | None = None
    event_name: str | None = None
    market_cap: int | None = None
    eps_estimate: float | None = None
    eps_reported: float | None = None
    surprise_pct: float | None = None
    source: str = SOURCE_CALENDAR

    @property
    def key(self) -> tuple[str, dt.date]:
        return self.symbol, self.event_date


class RowIssue(msgspec.Struct, frozen=True):
    """A rejected row (``rejections``) or a field that was nulled (``warnings``)."""

    row: int  # 0-based position in its page
    symbol: str | None
    reason: str
    detail: str = ""


class CalendarPage(msgspec.Struct):
    events: list[EarningsEvent]
    rejections: list[RowIssue]
    warnings: list[RowIssue]
    rows: int  # rows in the page, whatever became of them
    total: int | None  # Yahoo's total match count, when given


class CalendarFetch(msgspec.Struct):
    """A whole calendar window."""

    start: dt.date
    end: dt.date
    source: str
    events: list[EarningsEvent]
    rejections: list[RowIssue]
    warnings: list[RowIssue]
    pages: int = 0
    requests: int = 0
    total: int | None = None
    outside_window: int = 0
    duplicates: int = 0


class Fundamentals(msgspec.Struct, frozen=True, kw_only=True):
    """Basic fundamentals of one symbol (fractions for margins, USD unless ``currency``)."""

    symbol: str
    fetched_at: dt.datetime
    eps_trailing: float | None = None
    eps_forward: float | None = None
    revenue: float | None = None
    gross_margin: float | None = None
    operating_margin: float | None = None
    profit_margin: float | None = None
    currency: str | None = None
    latest_quarter: str | None = None  # Yahoo's label, e.g. "3Q2026"
    latest_quarter_eps_estimate: float | None = None
    latest_quarter_eps_actual: float | None = None
    source: str = SOURCE_QUOTE_SUMMARY
    available: bool = True  # False: Yahoo has no fundamentals for the symbol (404)


# -- value readers -----------------------------------------------------------------------------


class BadValue(ValueError):
    """A value that is present but not what the field needs."""


def number(value: Any) -> float | None:
    """A finite number from Yahoo's shapes: JSON number, numeric string, ``{raw, fmt}``.

    ``None``, ``{}``, ``{"raw": null}``, ``"NaN"``, ``"-"`` and non-finite values are missing
    (``None``); anything else that is not a number raises :class:`BadValue`.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadValue(f"boolean {value!r} is not a number")
    if isinstance(value, int | float):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, Mapping):
        return number(value.get("raw")) if value else None
    if isinstance(value, str):
        text = value.strip().replace(",", "").rstrip("%")
        if text.lower() in _MISSING_TEXT:
            return None
        try:
            v = float(text)
        except ValueError:
            raise BadValue(f"{value[:40]!r} is not a number") from None
        return v if math.isfinite(v) else None
    raise BadValue(f"{type(value).__name__} is not a number")


def _lenient(value: Any) -> float | None:
    """:func:`number`, with anything unreadable as missing (fundamentals: best effort)."""
    try:
        return number(value)
    except BadValue:
        return None


def parse_instant(value: Any) -> dt.datetime:
    """ISO-8601 (``Z`` or offset; naive = UTC) or epoch seconds/milliseconds -> aware UTC."""
    if isinstance(value, Mapping):
        value = value.get("raw")
    if isinstance(value, bool) or value is None:
        raise BadValue(f"{value!r} is not a date")
    if isinstance(value, int | float):
        secs = float(value) / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            return dt.datetime.fromtimestamp(secs, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise BadValue(f"{value!r} is not a valid epoch") from None
    if not isinstance(value, str):
        raise BadValue(f"{type(value).__name__} is not a date")
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadValue(f"{value[:40]!r} is not an ISO-8601 date") from None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def timing_from_clock(t: dt.datetime) -> Timing:
    """BMO / DMH / AMC from the New York time of day of an instant."""
    local = t.astimezone(NY).time()
    if local < _OPEN:
        return "BMO"
    return "AMC" if local >= _CLOSE else "DMH"


def normalize_timing(raw: Any, start: dt.datetime) -> tuple[Timing, str | None]:
    """(timing, warning) for a ``startdatetimetype`` value."""
    if raw is None:
        return "TMC", None
    if not isinstance(raw, str):
        return "TMC", f"timing {raw!r} is not a string"
    code = raw.strip().upper()
    if code in _KNOWN_TIMING:
        return code, None  # type: ignore[return-value]
    if code in _NOT_SUPPLIED:
        return "TMC", None
    if code == "TAS":
        return timing_from_clock(start), None
    return "TMC", f"unknown timing code {raw[:20]!r}"


def event_day(start: dt.datetime, timing: Timing) -> dt.date:
    """The New York date of the start; an unconfirmed time at exactly 00:00 UTC is a bare
    date (its New York date would be the evening before)."""
    if timing == "TMC" and start.astimezone(dt.UTC).time() == dt.time(0, 0):
        return start.astimezone(dt.UTC).date()
    return start.astimezone(NY).date()


# -- calendar parsing --------------------------------------------------------------------------


def resolve_columns(columns: Sequence[Any]) -> dict[Field, int]:
    """Field -> column position, from ids (preferred) or labels. Raises on a bad header."""
    found: dict[Field, int] = {}
    for i, col in enumerate(columns):
        if not isinstance(col, Mapping):
            raise UpstreamPayloadError(f"calendar column {i} is not an object")
        cid = str(col.get("id") or "").strip().lower()
        label = str(col.get("label") or "").strip().lower()
        ctype = str(col.get("type") or "").strip().upper()
        field = BY_ID.get(cid)
        if field is None and label == "event start date":
            field = "timing" if ctype == "STRING" else "start"
        if field is None:
            field = BY_LABEL.get(label)
        if field is not None and field not in found:
            found[field] = i
    missing = sorted(REQUIRED - found.keys())
    if missing:
        raise UpstreamPayloadError(f"calendar response lacks column(s) {', '.join(missing)}")
    return found


class _Doc(msgspec.Struct):
    columns: list[Any] = msgspec.field(default_factory=list)
    rows: list[Any] = msgspec.field(default_factory=list)


class _Result(msgspec.Struct):
    documents: list[_Doc] = msgspec.field(default_factory=list)
    total: Any = None


class _FinanceError(msgspec.Struct):
    code: str = ""
    description: str = ""


class _Finance(msgspec.Struct):
    result: list[_Result] | None = None
    error: _FinanceError | None = None


class _CalendarEnvelope(msgspec.Struct):
    finance: _Finance


_calendar_decoder: Final = msgspec.json.Decoder(_CalendarEnvelope)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _row_event(
    row: Sequence[Any], cols: Mapping[Field, int], fetched_at: dt.datetime, source: str
) -> tuple[EarningsEvent, list[str]]:
    """One row -> event and warnings; raises :class:`BadValue` for a row to reject."""

    def get(field: Field) -> Any:
        i = cols.get(field)
        return row[i] if i is not None else None

    raw_symbol = get("symbol")
    symbol = raw_symbol.strip().upper() if isinstance(raw_symbol, str) else ""
    problem = check_symbol(symbol) if symbol else "missing symbol"
    if problem:
        raise BadValue(f"symbol: {problem}")
    try:
        start = parse_instant(get("start"))
    except BadValue as exc:
        raise BadValue(f"start: {exc}") from None
    warnings: list[str] = []
    timing, warn = normalize_timing(get("timing"), start)
    if warn:
        warnings.append(warn)
    values: dict[str, float | None] = {}
    for field in ("market_cap", "eps_estimate", "eps_reported", "surprise_pct"):
        try:
            values[field] = number(get(field))
        except BadValue as exc:
            values[field] = None
            warnings.append(f"{field}: {exc}")
    estimate = values["eps_estimate"] or None  # 0 -> missing (see module doc)
    reported, surprise = values["eps_reported"], values["surprise_pct"]
    if reported == 0.0 and not (surprise and start <= fetched_at):
        reported = None  # a placeholder, not a genuine $0.00
    if reported is None:
        surprise = None
    cap = values["market_cap"]
    event = EarningsEvent(
        symbol=symbol,
        event_date=event_day(start, timing),
        event_time=start,
        timing=timing,
        company_name=_text(get("company_name")),
        event_name=_text(get("event_name")),
        market_cap=round(cap) if cap is not None and cap > 0 else None,
        eps_estimate=estimate,
        eps_reported=reported,
        surprise_pct=surprise,
        source=source,
    )
    return event, warnings


def parse_calendar_page(
    body: bytes, *, fetched_at: dt.datetime, source: str = SOURCE_CALENDAR, url: str = ""
) -> CalendarPage:
    """One visualization answer -> events, rejected rows and warnings.

    Raises :class:`~engine.errors.UpstreamPayloadError` when the body as a whole is unusable
    (not the envelope, ``finance.error`` set, no document, required columns missing).
    """
    try:
        env = _calendar_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamPayloadError(f"malformed calendar body: {exc}", url=url) from exc
    if env.finance.error is not None:
        err = env.finance.error
        raise UpstreamPayloadError(f"calendar error: {err.code}: {err.description}", url=url)
    results = env.finance.result or []
    if not results or not results[0].documents:
        raise UpstreamPayloadError("calendar answer has no result document", url=url)
    res, doc = results[0], results[0].documents[0]
    cols = resolve_columns(doc.columns)
    page = CalendarPage([], [], [], len(doc.rows), _total(res.total))
    width = len(doc.columns)
    for i, row in enumerate(doc.rows):
        sym = _row_symbol(row, cols)
        if not isinstance(row, list) or len(row) != width:
            page.rejections.append(RowIssue(i, sym, "row_shape", f"expected {width} cells"))
            continue
        try:
            event, warnings = _row_event(row, cols, fetched_at, source)
        except BadValue as exc:
            reason = str(exc).split(":", 1)[0]
            page.rejections.append(RowIssue(i, sym, f"bad_{reason}", str(exc)[:200]))
            continue
        page.events.append(event)
        page.warnings.extend(RowIssue(i, event.symbol, "field_nulled", w[:200]) for w in warnings)
    return page


def _total(value: Any) -> int | None:
    try:
        v = number(value)
    except BadValue:
        return None
    return int(v) if v is not None and v >= 0 else None


def _row_symbol(row: Any, cols: Mapping[Field, int]) -> str | None:
    i = cols["symbol"]
    cell = row[i] if isinstance(row, list) and i < len(row) else None
    return cell[:32] if isinstance(cell, str) else None


def calendar_request(start: dt.date, end: dt.date, size: int, offset: int) -> dict[str, Any]:
    """The JSON body asking for the whole US calendar between two New York dates."""
    return {
        "sortType": "DESC",
        "entityIdType": "sp_earnings",
        "sortField": "intradaymarketcap",
        "includeFields": list(INCLUDE_FIELDS),
        "size": size,
        "offset": offset,
        "query": {
            "operator": "AND",
            "operands": [
                {"operator": "EQ", "operands": ["region", "us"]},
                {
                    "operator": "OR",
                    "operands": [
                        {"operator": "EQ", "operands": ["eventtype", "EAD"]},
                        {"operator": "EQ", "operands": ["eventtype", "ERA"]},
                    ],
                },
                {"operator": "GTE", "operands": ["startdatetime", start.isoformat()]},
                {"operator": "LTE", "operands": ["startdatetime", end.isoformat()]},
            ],
        },
    }


class _Collector:
    """Merges pages: de-duplication by (symbol, date), window filter, counters."""

    def __init__(self, start: dt.date, end: dt.date, source: str) -> None:
        self.out = CalendarFetch(start, end, source, [], [], [])
        self._seen: set[tuple[str, dt.date]] = set()

    def add(self, page: CalendarPage) -> None:
        out = self.out
        out.pages += 1
        out.rejections.extend(page.rejections)
        out.warnings.extend(page.warnings)
        for e in page.events:
            if not out.start <= e.event_date <= out.end:
                out.outside_window += 1
            elif e.key in self._seen:
                out.duplicates += 1
            else:
                self._seen.add(e.key)
                out.events.append(e)


Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EarningsCalendarFetcher:
    """The whole calendar between two dates, paged (primary source)."""

    def __init__(
        self, client: YahooClient, *, page_size: int = 100, max_pages: int = 100,
        clock: Clock = utcnow,
    ) -> None:  # fmt: skip
        if not 1 <= page_size <= 100:
            raise ValueError("page_size must be between 1 and 100 (Yahoo's cap)")
        self.client = client
        self.page_size = page_size
        self.max_pages = max_pages
        self.clock = clock

    async def fetch(self, start: dt.date, end: dt.date) -> CalendarFetch:
        """Every page of ``[start, end]``. Raises :class:`UpstreamError` if any page fails."""
        url = self.client.endpoints.query1 + VISUALIZATION_PATH
        params = {"lang": "en-US", "region": "US"}
        acc = _Collector(start, end, SOURCE_CALENDAR)
        offset = 0
        while True:
            if acc.out.pages >= self.max_pages:
                raise UpstreamPayloadError(
                    f"calendar {start}..{end} needs more than {self.max_pages} pages "
                    f"(total {acc.out.total}); raise earnings.max_pages",
                    url=url,
                )
            body = msgspec.json.encode(calendar_request(start, end, self.page_size, offset))
            page, attempts = await self.client.post_json_with_retries(
                url, params, body, _page_parser(self.clock())
            )
            acc.out.requests += attempts
            acc.add(page)
            if page.total is not None:
                acc.out.total = page.total
            offset += page.rows
            if _last_page(page, offset, self.page_size, acc.out.total):
                break
        log.info(
            "earnings_calendar_fetched",
            extra={
                "start": start.isoformat(),
                "end": end.isoformat(),
                "events": len(acc.out.events),
                "rejected": len(acc.out.rejections),
                "pages": acc.out.pages,
                "total": acc.out.total,
            },
        )
        return acc.out


def _page_parser(fetched_at: dt.datetime) -> Callable[[HttpResponse], CalendarPage]:
    def parse(r: HttpResponse) -> CalendarPage:
        return parse_calendar_page(r.body, fetched_at=fetched_at, url=r.url)

    return parse


def _last_page(page: CalendarPage, offset: int, size: int, total: int | None) -> bool:
    if page.rows == 0:
        return True
    if total is not None:
        return offset >= total
    return page.rows < size


# -- quoteSummary ------------------------------------------------------------------------------


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
        n = _lenient(v)
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
        eps_trailing=_lenient(stats.get("trailingEps")),
        eps_forward=_lenient(stats.get("forwardEps")),
        revenue=_lenient(fin.get("totalRevenue")),
        gross_margin=_lenient(fin.get("grossMargins")),
        operating_margin=_lenient(fin.get("operatingMargins")),
        profit_margin=_first(fin.get("profitMargins"), stats.get("profitMargins")),
        currency=currency if isinstance(currency, str) and currency else None,
        latest_quarter=str(label) if isinstance(label, str | int) and label != "" else None,
        latest_quarter_eps_estimate=_lenient(quarter.get("estimate")),
        latest_quarter_eps_actual=_lenient(quarter.get("actual")),
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
    cap = _lenient(price.get("marketCap"))
    return EarningsEvent(
        symbol=symbol,
        event_date=start.astimezone(NY).date(),
        event_time=start,
        timing="TMC" if estimated else timing_from_clock(start),
        company_name=_text(price.get("shortName") or price.get("longName")),
        market_cap=int(cap) if cap is not None and cap > 0 else None,
        eps_estimate=_lenient(earnings.get("earningsAverage")) or None,
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
                extra={"failed": len(failed), "example": sym, "error": exc.kind},
            )
            raise exc
        acc = _Collector(start, end, SOURCE_QUOTE_SUMMARY)
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
