"""``POST /v1/finance/visualization``: the earnings calendar (``entityIdType: sp_earnings``).

Request: query string ``crumb`` (required, 401 envelope otherwise), ``lang``,
``region``; a JSON body ``{sortType, entityIdType, sortField, includeFields, size, offset,
query}``. ``query`` is a tree of ``{"operator": op, "operands": [...]}`` nodes: ``AND``/``OR``
over sub-nodes, and ``EQ``/``GT``/``GTE``/``LT``/``LTE``/``BTWN``/``GTELT``/``IS-IN`` over
``[field, value...]`` (operators are case-insensitive). Fields: the calendar columns plus
``region`` (always ``us``) and ``eventtype`` (``ERA`` for a confirmed time, ``EAD`` for
``TMC``). A ``YYYY-MM-DD`` operand compared with ``startdatetime`` compares whole New York
dates (``LTE 2026-12-03`` includes that day's evening reports); a full ISO operand compares
instants.

Response: ``{"finance": {"result": [{"start", "count", "total", "documents": [{
"entityIdType": "sp_earnings", "columns": [{"id", "label", "type"}...], "rows": [[...]...]}]}],
"error": null}}``. Columns follow ``includeFields`` (unknown ids are skipped); both
``startdatetime`` and ``startdatetimetype`` are labelled "Event Start Date" - the timing one has
type ``STRING``, the date one ``DATETIME``. Unreported EPS and surprise are ``null`` (``0`` with
``earnings_null_as_zero``); a missing estimate is ``null`` too. Rows are sorted by ``sortField``
(``sortType`` ASC/DESC, nulls last, then by ticker), so offset paging is stable. ``size`` above
``visualization_max_size`` (default 100, yfinance's cap) or below 1 is a 400 envelope, as is a
body that is not a JSON object, an unknown ``entityIdType`` or a malformed query.

The data is :func:`yahoo_emulator.earnings.schedule_for` at the emulator's clock: every listed
stock's quarterly report, not only the 200 most active.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import orjson
from aiohttp import web

from yahoo_emulator.auth import AuthStore, cookie_from_header
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.earnings import EarningsEvent, schedule_for
from yahoo_emulator.market import ny_date
from yahoo_emulator.responses import CACHE_QUOTE, error_response, json_response, unauthorized
from yahoo_emulator.universe import Universe


class VisualizationView(Protocol):
    """What the visualization (earnings calendar) handler uses of the emulator
    (:class:`.state.Emulator` has it all)."""

    @property
    def cfg(self) -> EmulatorConfig: ...

    @property
    def auth(self) -> AuthStore: ...

    @property
    def universe(self) -> Universe: ...

    def now(self) -> float: ...


OP_SCREENERS: Final = "finance-screeners--mtls-production-emu.finance-k8s:4080/*"

# id -> (label, type)
COLUMNS: Final[dict[str, tuple[str, str]]] = {
    "ticker": ("Symbol", "STRING"),
    "companyshortname": ("Company Name", "STRING"),
    "intradaymarketcap": ("Market Cap (Intraday)", "NUMBER"),
    "eventname": ("Event Name", "STRING"),
    "startdatetime": ("Event Start Date", "DATETIME"),
    "startdatetimetype": ("Event Start Date", "STRING"),
    "epsestimate": ("EPS Estimate", "NUMBER"),
    "epsactual": ("Reported EPS", "NUMBER"),
    "epssurprisepct": ("Surprise (%)", "NUMBER"),
    "eventtype": ("Event Type", "STRING"),
}
DEFAULT_FIELDS: Final = (
    "ticker", "companyshortname", "intradaymarketcap", "eventname", "startdatetime",
    "startdatetimetype", "epsestimate", "epsactual", "epssurprisepct",
)  # fmt: skip
_NULLABLE_NUMBERS: Final = ("epsestimate", "epsactual", "epssurprisepct")
_DEFAULT_PAST_DAYS: Final = 30
_DEFAULT_FUTURE_DAYS: Final = 90
MAX_SPAN_DAYS: Final = 400

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


class BadQuery(ValueError):
    """The body or its query cannot be served (-> 400 envelope)."""


def event_row(ev: EarningsEvent, now: float, *, null_as_zero: bool = False) -> Row:
    """The calendar fields of one event as the emulator serves them at ``now``."""
    row: Row = {
        "ticker": ev.symbol,
        "companyshortname": ev.company,
        "intradaymarketcap": ev.market_cap or None,
        "eventname": ev.event_name,
        "startdatetime": ev.start_iso,
        "startdatetimetype": ev.timing,
        "epsestimate": ev.eps_estimate,
        "epsactual": ev.eps_actual(now),
        "epssurprisepct": ev.surprise_pct(now),
        "eventtype": "EAD" if ev.timing == "TMC" else "ERA",
        "region": "us",
        "_day": ev.day,
    }
    if null_as_zero:
        for k in _NULLABLE_NUMBERS:
            if row[k] is None:
                row[k] = 0
    return row


# -- query ------------------------------------------------------------------------------------


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _as_instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _key(field: str, row: Row, operand: Any) -> tuple[Any, Any] | None:
    """(row value, operand) in comparable form, or None if they cannot be compared."""
    value = row.get(field)
    if value is None or operand is None:
        return None
    if field == "startdatetime":
        day = _as_date(operand)
        if day is not None:
            return row["_day"], day
        instant = _as_instant(operand)
        return (_as_instant(value), instant) if instant is not None else None
    if isinstance(value, str):
        return (value.lower(), str(operand).lower()) if isinstance(operand, str) else None
    if isinstance(operand, bool) or not isinstance(operand, int | float):
        return None
    return value, operand


_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "EQ": lambda a, b: bool(a == b),
    "GT": lambda a, b: bool(a > b),
    "GTE": lambda a, b: bool(a >= b),
    "LT": lambda a, b: bool(a < b),
    "LTE": lambda a, b: bool(a <= b),
}


def _leaf(op: str, operands: Sequence[Any]) -> Predicate:
    if not operands or not isinstance(operands[0], str):
        raise BadQuery(f"operator {op} needs [field, value...] operands")
    field = operands[0].lower()
    values = list(operands[1:])
    if op in _COMPARE:
        if len(values) != 1:
            raise BadQuery(f"operator {op} takes one value, got {len(values)}")
        cmp, value = _COMPARE[op], values[0]

        def simple(row: Row) -> bool:
            k = _key(field, row, value)
            return k is not None and cmp(*k)

        return simple
    if op in ("BTWN", "GTELT"):
        if len(values) != 2:
            raise BadQuery(f"operator {op} takes two values")
        lo, hi = values
        upper = _COMPARE["LTE" if op == "BTWN" else "LT"]

        def between(row: Row) -> bool:
            a, b = _key(field, row, lo), _key(field, row, hi)
            return a is not None and b is not None and a[0] >= a[1] and upper(*b)

        return between
    if op == "IS-IN":

        def is_in(row: Row) -> bool:
            return any((k := _key(field, row, v)) is not None and k[0] == k[1] for v in values)

        return is_in
    raise BadQuery(f"unknown operator {op!r}")


def _fast_or(children: Sequence[Any]) -> Predicate | None:
    """``OR`` of ``EQ`` on one string field (yfinance's most-actives filter) as a set lookup."""
    fields: set[str] = set()
    values: set[str] = set()
    for c in children:
        if not (isinstance(c, Mapping) and str(c.get("operator", "")).upper() == "EQ"):
            return None
        ops = c.get("operands")
        if not (isinstance(ops, list) and len(ops) == 2 and all(isinstance(o, str) for o in ops)):
            return None
        fields.add(ops[0].lower())
        values.add(ops[1].lower())
    if len(fields) != 1 or fields == {"startdatetime"}:
        return None
    (field,) = fields

    def lookup(row: Row) -> bool:
        v = row.get(field)
        return isinstance(v, str) and v.lower() in values

    return lookup


def compile_query(node: Any) -> Predicate:
    """The query tree as a predicate over rows. Raises :class:`BadQuery`."""
    if not isinstance(node, Mapping):
        raise BadQuery("query nodes must be objects {operator, operands}")
    op = str(node.get("operator", "")).upper()
    operands = node.get("operands")
    if not isinstance(operands, list):
        raise BadQuery(f"operator {op or '?'}: operands must be a list")
    if op in ("AND", "OR"):
        fast = _fast_or(operands) if op == "OR" else None
        if fast is not None:
            return fast
        children = [compile_query(c) for c in operands]
        if op == "AND":
            return lambda row: all(c(row) for c in children)
        return lambda row: any(c(row) for c in children)
    return _leaf(op, operands)


def _and_leaves(node: Any) -> list[tuple[str, list[Any]]]:
    """(operator, operands) of the leaves reachable from the root through ``AND`` nodes only."""
    if not isinstance(node, Mapping) or not isinstance(node.get("operands"), list):
        return []
    op = str(node.get("operator", "")).upper()
    if op == "AND":
        return [leaf for child in node["operands"] for leaf in _and_leaves(child)]
    return [(op, node["operands"])]


def date_bounds(node: Any, today: dt.date) -> tuple[dt.date, dt.date]:
    """The New York dates the query's top-level ``startdatetime`` conditions allow.

    Without a lower (upper) bound the range starts 30 days before (ends 90 days after) ``today``;
    it never spans more than :data:`MAX_SPAN_DAYS`.
    """
    lows: list[dt.date] = []
    highs: list[dt.date] = []
    for op, operands in _and_leaves(node):
        if not operands or str(operands[0]).lower() != "startdatetime":
            continue
        days = [_day_of(v) for v in operands[1:]]
        if any(d is None for d in days) or not days:
            continue
        ds = [d for d in days if d is not None]
        if op in ("GT", "GTE"):
            lows.append(ds[0])
        elif op in ("LT", "LTE"):
            highs.append(ds[0])
        elif op in ("BTWN", "GTELT") and len(ds) == 2:
            lows.append(ds[0])
            highs.append(ds[1])
    lo = max(lows) if lows else today - dt.timedelta(days=_DEFAULT_PAST_DAYS)
    hi = min(highs) if highs else today + dt.timedelta(days=_DEFAULT_FUTURE_DAYS)
    return lo, min(hi, lo + dt.timedelta(days=MAX_SPAN_DAYS))


def _day_of(value: Any) -> dt.date | None:
    day = _as_date(value)
    if day is not None:
        return day
    instant = _as_instant(value)
    return ny_date(instant.timestamp()) if instant is not None else None


# -- request ----------------------------------------------------------------------------------


def _int(body: Mapping[str, Any], key: str, default: int) -> int:
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadQuery(f"{key} must be an integer")
    return v


def parse_body(raw: bytes, max_size: int) -> dict[str, Any]:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise BadQuery(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadQuery("body must be a JSON object")
    entity = str(body.get("entityIdType", "")).lower()
    if entity != "sp_earnings":
        raise BadQuery(f"unsupported entityIdType {body.get('entityIdType')!r}")
    size, offset = _int(body, "size", 25), _int(body, "offset", 0)
    if size < 1 or (max_size and size > max_size):
        raise BadQuery(f"size must be between 1 and {max_size or 'unbounded'}, got {size}")
    if offset < 0:
        raise BadQuery("offset must be >= 0")
    fields = body.get("includeFields", list(DEFAULT_FIELDS))
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise BadQuery("includeFields must be a list of field ids")
    body["size"], body["offset"] = size, offset
    body["includeFields"] = [f.lower() for f in fields if f.lower() in COLUMNS]
    return body


def _sorted(rows: list[Row], field: str, descending: bool) -> list[Row]:
    rows = sorted(rows, key=lambda r: (r["ticker"], r["startdatetime"]))
    present = [r for r in rows if r.get(field) is not None]
    missing = [r for r in rows if r.get(field) is None]
    present.sort(key=lambda r: r[field], reverse=descending)
    return present + missing


def render(body: Mapping[str, Any], events: Sequence[EarningsEvent], now: float, *,
           null_as_zero: bool) -> bytes:  # fmt: skip
    """The response body for a parsed request over candidate ``events``."""
    predicate = compile_query(body.get("query", {"operator": "AND", "operands": []}))
    rows = [
        r for r in (event_row(e, now, null_as_zero=null_as_zero) for e in events) if predicate(r)
    ]
    sort_field = str(body.get("sortField") or "intradaymarketcap").lower()
    rows = _sorted(rows, sort_field, str(body.get("sortType", "DESC")).upper() != "ASC")
    offset, size = body["offset"], body["size"]
    page = rows[offset : offset + size]
    fields: list[str] = body["includeFields"]
    doc = {
        "entityIdType": "sp_earnings",
        "columns": [{"id": f, "label": COLUMNS[f][0], "type": COLUMNS[f][1]} for f in fields],
        "rows": [[r.get(f) for f in fields] for r in page],
    }
    result = {"start": offset, "count": len(page), "total": len(rows), "documents": [doc]}
    return orjson.dumps({"finance": {"result": [result], "error": None}})


async def handle_visualization(emu: VisualizationView, request: web.Request) -> web.StreamResponse:
    cfg = emu.cfg
    now = emu.now()
    if cfg.require_auth:
        cookie = cookie_from_header(request.headers.get("Cookie"))
        problem = emu.auth.check(cookie, request.query.get("crumb"), now, cfg)
        if problem is not None:
            return unauthorized(problem)
    try:
        body = parse_body(await request.read(), cfg.visualization_max_size)
        lo, hi = date_bounds(body.get("query"), ny_date(now))
        events = schedule_for(cfg, lo, hi, universe=emu.universe) if lo <= hi else ()
        out = render(body, events, now, null_as_zero=cfg.earnings_null_as_zero)
    except BadQuery as exc:
        return error_response(400, "Bad Request", str(exc), operation=OP_SCREENERS)
    return json_response(out, operation=OP_SCREENERS, cache=CACHE_QUOTE)
