"""The primary earnings source: Yahoo's whole earnings calendar, paged.

``POST /v1/finance/visualization`` with ``entityIdType: sp_earnings`` (docs/earnings-sources.md
explains the choice). :class:`EarningsCalendarFetcher` asks for the whole US calendar between two
New York dates - no "most active" ticker filter, unlike yfinance's default - in pages of
``page_size`` (<= 100) rows, ``offset`` advancing by the rows received until ``total`` is
reached. Each page is parsed by :func:`parse_calendar_page`:

* Columns are matched by ``id`` (the ``includeFields`` name), else by ``label``; never by
  position. The two columns labelled "Event Start Date" are told apart by type: ``STRING`` is
  the timing code, the other the start instant. Extra columns are ignored; a missing optional
  column gives ``None`` values; a missing ``ticker`` or ``startdatetime`` column fails the page.
* Values are read by :mod:`engine.earnings.values` (numbers, instants, timing codes). A
  non-numeric value in an optional column nulls that field with a warning; a row with no usable
  symbol or start instant, or of the wrong length, is rejected with its reason.
* Zero: yfinance treats 0.0 as missing, and so does Yahoo's own page. An EPS *estimate* of
  exactly 0 is taken as missing (a consensus of exactly $0.00 is rare; a fake 0 would make every
  surprise infinite). A *reported* EPS of 0 is kept only when it cannot be a placeholder: the
  event has started and the row carries a non-zero surprise (a genuine $0.00 against a non-zero
  estimate is a -100 % surprise). Otherwise 0 means "not reported yet"; so does any reported EPS
  with no value. The surprise is kept only alongside a reported EPS.
* Rows are de-duplicated on (symbol, date) - a row seen twice because the order shifted between
  two pages counts once; rows outside the requested dates are dropped (counted).
* The request sorts like yfinance's known-good body (``intradaymarketcap`` DESC).

Everything network-bound goes through :class:`~engine.source.client.YahooClient` (crumb, the
shared rate limiter and breaker, retries); failures surface as
:class:`~engine.errors.UpstreamError`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import msgspec

from engine.earnings.models import (
    SOURCE_CALENDAR,
    CalendarCollector,
    CalendarFetch,
    CalendarPage,
    Clock,
    EarningsEvent,
    RowIssue,
    utcnow,
)
from engine.earnings.values import (
    BadValue,
    event_day,
    normalize_timing,
    number,
    parse_instant,
    text,
)
from engine.errors import UpstreamPayloadError
from engine.source.client import YahooClient
from engine.source.notation import check_symbol
from engine.source.transport import HttpResponse

log = logging.getLogger(__name__)

VISUALIZATION_PATH: Final = "/v1/finance/visualization"
INCLUDE_FIELDS: Final = (
    "ticker", "companyshortname", "intradaymarketcap", "eventname", "startdatetime",
    "startdatetimetype", "epsestimate", "epsactual", "epssurprisepct",
)  # fmt: skip
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
    estimate = values["eps_estimate"] or None  # 0 -> missing (see the module docstring)
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
        company_name=text(get("company_name")),
        event_name=text(get("event_name")),
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
        acc = CalendarCollector(start, end, SOURCE_CALENDAR)
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
