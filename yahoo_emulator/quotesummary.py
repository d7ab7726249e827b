"""``GET /v10/finance/quoteSummary/{symbol}`` and a minimal fundamentals-timeseries endpoint.

quoteSummary: ``modules`` is a comma list; the crumb is required
(401 envelope). The answer is ``{"quoteSummary": {"result": [{<module>: {...}, ...}], "error":
null}}`` with the modules that have data, in request order; each carries ``maxAge`` (1 or
86400). Modules served: ``price``, ``summaryDetail``, ``quoteType``, ``assetProfile``,
``defaultKeyStatistics``, ``financialData``, ``calendarEvents``, ``earnings``,
``earningsHistory``. Any other module (valid for Yahoo or not) has no data and is left out.

* Unknown, replica or delisted symbol -> 404 ``Quote not found for ticker symbol: X``.
* None of the requested modules has data for the symbol -> 404 ``No fundamentals data found for
  any of the summaryTypes=...``. ``earnings``/``earningsHistory`` have no data for the ~8 % of
  stocks without an earnings schedule (:mod:`.earnings`).
* No ``modules`` parameter -> 400 envelope.

Value shapes - the quirks a client has to survive:

* ``formatted=false`` (yfinance's and the engine's choice): plain JSON numbers in most modules,
  but ``assetProfile`` and ``earningsHistory`` keep ``{raw, fmt}`` objects (``longFmt`` for
  large amounts; a zero amount is ``{"raw": 0, "fmt": null, "longFmt": "0"}``; dates are
  ``{"raw": epoch, "fmt": "YYYY-MM-DD"}``), as Yahoo's other statement-like modules do.
* ``formatted=true``: every number in every module is ``{raw, fmt}``.
* A value Yahoo does not have is an empty object ``{}`` in *every* module and both modes (no
  analyst estimate, unknown market cap, ``pegRatio`` which Yahoo no longer fills).
* ``price.regularMarketChangePercent`` is a fraction (v7 quote: percent).

Figures: EPS and averages come from :mod:`.universe` (so ``trailingEps`` equals the v7
``epsTrailingTwelveMonths``); revenue and margins are derived here from a stable hash of the
symbol (a price-to-sales ratio, a gross and an operating margin) with the profit margin
consistent with the trailing EPS; the live price is the market's. Quarterly EPS actual and
estimate (``earnings``, ``earningsHistory``) and the next date (``calendarEvents``) are the
events of :func:`yahoo_emulator.earnings.events_for_config`, so they agree with the calendar.

``GET /ws/fundamentals-timeseries/v1/finance/timeseries/{symbol}`` answers every requested
``type`` with the "no data" entry Yahoo uses (``meta`` only); it exists so that
``yfinance.Ticker.info`` (which asks it for ``trailingPegRatio``) works against the emulator.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, Final, Protocol

import numpy as np
import orjson
from aiohttp import web

from yahoo_emulator import fmt, rng
from yahoo_emulator.auth import AuthStore, cookie_from_header
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.earnings import EarningsEvent, events_for_config
from yahoo_emulator.market import Market, ny_date, tz_info
from yahoo_emulator.responses import (
    CACHE_ERROR,
    CACHE_QUOTE,
    N_SYMBOLS,
    error_response,
    json_response,
    unauthorized,
)
from yahoo_emulator.universe import Universe


class SummaryView(Protocol):
    """What the quoteSummary and timeseries handlers use of the emulator
    (:class:`.state.Emulator` has it all)."""

    @property
    def cfg(self) -> EmulatorConfig: ...

    @property
    def auth(self) -> AuthStore: ...

    @property
    def delisted(self) -> frozenset[str]: ...

    @property
    def market(self) -> Market: ...

    @property
    def universe(self) -> Universe: ...

    def now(self) -> float: ...


OP_FUNDAMENTALS: Final = "finance-company-fundamentals-api--mtls-production-emu.finance-k8s:4080/*"
OP_TIMESERIES: Final = "finance-fundamentals-timeseries--mtls-production-emu.finance-k8s:4080/*"


class _Missing:
    """A value Yahoo does not have: rendered as ``{}``."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
RAW_FMT_MODULES: Final = frozenset({"assetProfile", "earningsHistory"})
SERVED: Final = (
    "price", "summaryDetail", "quoteType", "assetProfile", "defaultKeyStatistics",
    "financialData", "calendarEvents", "earnings", "earningsHistory",
)  # fmt: skip
DATE_KEYS: Final = frozenset(
    {
        "exDividendDate", "dividendDate", "earningsDate", "earningsCallDate", "quarter",
        "mostRecentQuarter", "lastFiscalYearEnd", "nextFiscalYearEnd", "lastSplitDate",
    }
)  # fmt: skip
FRACTION_KEYS: Final = frozenset(
    {
        "grossMargins", "operatingMargins", "ebitdaMargins", "profitMargins", "revenueGrowth",
        "earningsGrowth", "surprisePercent", "dividendYield", "trailingAnnualDividendYield",
        "payoutRatio", "regularMarketChangePercent", "heldPercentInsiders",
        "heldPercentInstitutions",
    }
)  # fmt: skip
LARGE_KEYS: Final = frozenset(
    {
        "totalRevenue", "grossProfits", "ebitda", "totalCash", "totalDebt", "marketCap",
        "enterpriseValue", "sharesOutstanding", "floatShares", "netIncomeToCommon", "volume",
        "regularMarketVolume", "averageVolume", "averageVolume10days", "averageDailyVolume10Day",
        "revenue", "earnings", "revenueAverage", "revenueLow", "revenueHigh", "fullTimeEmployees",
        "bidSize", "askSize",
    }
)  # fmt: skip
PLAIN_INT_KEYS: Final = frozenset(
    {"maxAge", "priceHint", "exchangeDataDelayedBy", "gmtOffSetMilliseconds",
     "firstTradeDateEpochUtc", "numberOfAnalystOpinions", "currentQuarterEstimateYear",
     "date"}
)  # fmt: skip
_SECTOR_STREAM: Final = 300
NOT_FOUND: Final = "Quote not found for ticker symbol: {}"
NO_DATA: Final = "No fundamentals data found for any of the summaryTypes={}"


# -- value rendering ----------------------------------------------------------------------------


def _fmt_number(key: str, v: float) -> dict[str, Any]:
    if key in DATE_KEYS:
        return {"raw": int(v), "fmt": fmt.date_fmt(int(v))}
    if key in FRACTION_KEYS:
        return {"raw": v, "fmt": f"{v * 100:.2f}%"}
    if key in LARGE_KEYS:
        if v == 0:
            return {"raw": 0, "fmt": None, "longFmt": "0"}
        return {"raw": v, "fmt": fmt.abbreviate(v), "longFmt": f"{int(v):,}"}
    return {"raw": v, "fmt": f"{v:.2f}"}


def render_value(key: str, v: Any, raw_fmt: bool) -> Any:
    """One value in its wire form (``raw_fmt``: numbers as ``{raw, fmt}`` objects)."""
    if v is MISSING:
        return {}
    if isinstance(v, dict):
        return {k: render_value(k, x, raw_fmt) for k, x in v.items()}
    if isinstance(v, list):
        return [render_value(key, x, raw_fmt) for x in v]
    if isinstance(v, bool) or not isinstance(v, int | float):
        return v
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        v = int(v)  # Yahoo writes whole numbers without a decimal point
    if raw_fmt and key not in PLAIN_INT_KEYS:
        return _fmt_number(key, v)
    return v


def _num(x: float, digits: int = 4) -> float | int:
    v = round(float(x), digits)
    return int(v) if v.is_integer() else v


# -- static fundamentals ------------------------------------------------------------------------


def _draws(key: int, n: int) -> list[float]:
    ids = np.array([key], dtype=np.uint64)
    return [float(rng.uniforms(ids, 0, _SECTOR_STREAM + k, 0)[0]) for k in range(n)]


class Fundamentals:
    """Static figures of one listed stock (seed-independent, like :mod:`.universe`)."""

    def __init__(self, emu: SummaryView, b: int) -> None:
        u = emu.universe
        d = _draws(int(u.key[b]), 8)
        self.cap = int(u.market_cap[b])
        self.shares = int(u.shares_out[b])
        self.eps = float(u.eps_ttm[b])
        self.eps_fwd = float(u.eps_fwd[b])
        self.revenue: float | _Missing = MISSING
        self.gross: float | _Missing = MISSING
        self.operating: float | _Missing = MISSING
        self.profit: float | _Missing = MISSING
        self.revenue_growth = _num(-0.15 + 0.45 * d[3])
        self.dividend = self.eps > 0 and d[4] < 0.4
        self.employees = int(50 + d[5] ** 3 * 200_000)
        self.beta = _num(0.4 + 1.6 * d[6], 3)
        if self.cap > 0 and self.shares > 0:
            # profitable: a net margin of 3-30 % fixes revenue from the trailing EPS;
            # loss-making: a price-to-sales ratio of 0.5-8.5 fixes it
            income = self.eps * self.shares
            if income > 0:
                revenue = float(round(income / (0.03 + 0.27 * d[0])))
            else:
                revenue = float(round(self.cap / (0.5 + 8.0 * d[0])))
            profit = max(-2.0, income / revenue)
            operating = profit * 1.2 + 0.03 if profit > 0 else profit * 0.85
            self.revenue = revenue
            self.profit = _num(profit)
            self.operating = _num(operating)
            self.gross = _num(min(0.95, max(0.15 + 0.65 * d[1], operating + 0.08)))


# -- modules ------------------------------------------------------------------------------------


class Context:
    """Everything the module builders of one request need."""

    def __init__(self, emu: SummaryView, b: int, now: float) -> None:
        self.emu = emu
        self.u = emu.universe
        self.b = b
        self.now = now
        self.f = Fundamentals(emu, b)
        m = emu.market
        m.sync(now)
        self.m = m
        self.price = float(m.reg_px[b])
        self.prev = float(m.prev_close[b])
        mt = m.market_time(now)
        self.time = int(m.reg_t[b]) if mt is None else mt
        today = ny_date(now)
        events = events_for_config(
            emu.cfg, self.u, b, today - dt.timedelta(days=400), today + dt.timedelta(days=120)
        )
        self.past = [e for e in events if e.reported(now)][-4:]
        upcoming = [e for e in events if not e.reported(now)]
        self.next: EarningsEvent | None = upcoming[0] if upcoming else None
        self.has_schedule = bool(events)

    def cap_now(self) -> int | _Missing:
        return round(self.price * self.f.shares) if self.f.shares else MISSING


def _price(c: Context) -> dict[str, Any]:
    u, b, m = c.u, c.b, c.m
    chg = c.price - c.prev
    return {
        "maxAge": 1,
        "regularMarketChangePercent": _num(chg / c.prev, 6) if c.prev else MISSING,
        "regularMarketChange": _num(chg, 4),
        "regularMarketTime": c.time,
        "priceHint": int(u.price_hint[b]),
        "regularMarketPrice": _num(c.price, 4),
        "regularMarketDayHigh": _num(m.day_high[b], 4),
        "regularMarketDayLow": _num(m.day_low[b], 4),
        "regularMarketVolume": int(m.day_vol[b]),
        "regularMarketPreviousClose": _num(c.prev, 4),
        "regularMarketOpen": _num(m.day_open[b], 4),
        "regularMarketSource": "FREE_REALTIME",
        "exchange": u.exchange[b],
        "exchangeName": u.full_exchange_name[b],
        "exchangeDataDelayedBy": 0,
        "marketState": m.state,
        "quoteType": "EQUITY",
        "symbol": u.symbols[b],
        "underlyingSymbol": None,
        "shortName": u.short_name[b],
        "longName": u.name[b],
        "currency": "USD",
        "quoteSourceName": "Nasdaq Real Time Price",
        "currencySymbol": "$",
        "fromCurrency": None,
        "toCurrency": None,
        "lastMarket": None,
        "marketCap": c.cap_now(),
    }


def _summary_detail(c: Context) -> dict[str, Any]:
    u, b, m, f = c.u, c.b, c.m, c.f
    out: dict[str, Any] = {
        "maxAge": 1,
        "priceHint": int(u.price_hint[b]),
        "previousClose": _num(c.prev, 4),
        "open": _num(m.day_open[b], 4),
        "dayLow": _num(m.day_low[b], 4),
        "dayHigh": _num(m.day_high[b], 4),
        "regularMarketPreviousClose": _num(c.prev, 4),
        "regularMarketOpen": _num(m.day_open[b], 4),
        "regularMarketDayLow": _num(m.day_low[b], 4),
        "regularMarketDayHigh": _num(m.day_high[b], 4),
        "beta": f.beta,
        "trailingPE": _num(c.price / f.eps, 4) if f.eps > 0 else MISSING,
        "forwardPE": _num(c.price / f.eps_fwd, 4) if f.eps_fwd > 0 else MISSING,
        "volume": int(m.day_vol[b]),
        "regularMarketVolume": int(m.day_vol[b]),
        "averageVolume": int(u.avg_vol_3m[b]),
        "averageVolume10days": int(u.avg_vol_10d[b]),
        "averageDailyVolume10Day": int(u.avg_vol_10d[b]),
        "marketCap": c.cap_now(),
        "fiftyTwoWeekLow": _num(min(u.low_52w[b], c.price), 4),
        "fiftyTwoWeekHigh": _num(max(u.high_52w[b], c.price), 4),
        "priceToSalesTrailing12Months": (
            _num(c.price * f.shares / f.revenue, 4) if isinstance(f.revenue, float) else MISSING
        ),
        "fiftyDayAverage": _num(u.avg_50d[b], 4),
        "twoHundredDayAverage": _num(u.avg_200d[b], 4),
        "currency": "USD",
        "fromCurrency": None,
        "toCurrency": None,
        "lastMarket": None,
        "tradeable": False,
    }
    if f.dividend:
        rate = _num(f.eps * 0.35, 2)
        out.update(
            dividendRate=rate,
            dividendYield=_num(rate / c.price, 4),
            trailingAnnualDividendRate=rate,
            trailingAnnualDividendYield=_num(rate / c.price, 4),
            payoutRatio=0.35,
        )
    return out


def _quote_type(c: Context) -> dict[str, Any]:
    u, b = c.u, c.b
    name, off = tz_info(c.now)
    return {
        "exchange": u.exchange[b],
        "quoteType": "EQUITY",
        "symbol": u.symbols[b],
        "underlyingSymbol": u.symbols[b],
        "shortName": u.short_name[b],
        "longName": u.name[b],
        "firstTradeDateEpochUtc": int(u.first_trade_s[b]),
        "timeZoneFullName": "America/New_York",
        "timeZoneShortName": name,
        "uuid": str(uuid.UUID(int=int(u.key[b]) << 64 | int(u.key[b]))),
        "messageBoardId": u.message_board_id[b],
        "gmtOffSetMilliseconds": off * 1000,
        "maxAge": 1,
    }


def _asset_profile(c: Context) -> dict[str, Any]:
    u, b = c.u, c.b
    return {
        "country": u.country[b] or "United States",
        "industry": u.industry[b] or MISSING,
        "sector": u.sector[b] or MISSING,
        "fullTimeEmployees": c.f.employees,
        "longBusinessSummary": f"{u.name[b]} is a company listed on {u.full_exchange_name[b]}.",
        "companyOfficers": [],
        "maxAge": 86400,
    }


def _quarter_end(e: EarningsEvent) -> int:
    """Epoch of the last day of the quarter the event reports."""
    q_start = dt.date(e.day.year, (e.day.month - 1) // 3 * 3 + 1, 1)
    end = q_start - dt.timedelta(days=1)
    return int(dt.datetime.combine(end, dt.time(), dt.UTC).timestamp())


def _quarter_code(e: EarningsEvent) -> str:
    """``Q3 2026 Earnings Release`` -> ``3Q2026``."""
    q, year = e.event_name.split()[:2]
    return f"{q[1:]}Q{year}"


def _last_year_end(now: float) -> int:
    year = ny_date(now).year - 1
    return int(dt.datetime(year, 12, 31, tzinfo=dt.UTC).timestamp())


def _default_key_statistics(c: Context) -> dict[str, Any]:
    u, b, f = c.u, c.b, c.f
    last = _quarter_end(c.past[-1]) if c.past else MISSING
    return {
        "maxAge": 1,
        "priceHint": int(u.price_hint[b]),
        "enterpriseValue": round(c.price * f.shares * 1.08) if f.shares else MISSING,
        "forwardPE": _num(c.price / f.eps_fwd, 4) if f.eps_fwd > 0 else MISSING,
        "profitMargins": f.profit,
        "floatShares": round(f.shares * 0.93) if f.shares else MISSING,
        "sharesOutstanding": f.shares or MISSING,
        "bookValue": _num(u.book_value[b], 4),
        "priceToBook": _num(c.price / float(u.book_value[b]), 4),
        "lastFiscalYearEnd": _last_year_end(c.now),
        "mostRecentQuarter": last,
        "netIncomeToCommon": round(f.eps * f.shares) if f.shares else MISSING,
        "trailingEps": _num(f.eps, 2),
        "forwardEps": _num(f.eps_fwd, 2),
        "pegRatio": MISSING,
        "beta": f.beta,
    }


Amount = float | _Missing


def _times(a: Amount, b: Amount) -> Amount:
    """``round(a * b)``, or MISSING when either is."""
    return float(round(a * b)) if isinstance(a, float) and isinstance(b, float) else MISSING


def _financial_data(c: Context) -> dict[str, Any]:
    f, u, b = c.f, c.u, c.b
    revenue = f.revenue
    rated = bool(u.analyst_rating[b])
    per_share = revenue / f.shares if isinstance(revenue, float) and f.shares else MISSING
    ebitda_margin: Amount = f.operating + 0.05 if isinstance(f.operating, float) else MISSING
    return {
        "maxAge": 86400,
        "currentPrice": _num(c.price, 4),
        "targetHighPrice": _num(c.price * 1.35, 2) if rated else MISSING,
        "targetLowPrice": _num(c.price * 0.8, 2) if rated else MISSING,
        "targetMeanPrice": _num(c.price * 1.1, 2) if rated else MISSING,
        "recommendationKey": u.analyst_rating[b].split(" - ")[1].lower() if rated else "none",
        "numberOfAnalystOpinions": 12 if rated else MISSING,
        "totalRevenue": revenue,
        "revenuePerShare": _num(per_share, 3) if isinstance(per_share, float) else MISSING,
        "grossProfits": _times(revenue, f.gross),
        "ebitda": _times(revenue, ebitda_margin),
        "grossMargins": f.gross,
        "operatingMargins": f.operating,
        "ebitdaMargins": _num(ebitda_margin) if isinstance(ebitda_margin, float) else MISSING,
        "profitMargins": f.profit,
        "revenueGrowth": f.revenue_growth,
        "earningsGrowth": MISSING if f.eps <= 0 else _num(f.revenue_growth * 1.3),
        "financialCurrency": "USD",
    }


def _or_missing(v: float | None) -> float | _Missing:
    return MISSING if v is None else v


def _earnings_chart(c: Context) -> dict[str, Any]:
    quarterly = [
        {
            "date": _quarter_code(e),
            "actual": e.eps_actual_value,
            "estimate": _or_missing(e.eps_estimate),
        }
        for e in c.past
    ]
    chart: dict[str, Any] = {"quarterly": quarterly}
    nxt = c.next
    if nxt is not None:
        code = _quarter_code(nxt)
        chart.update(
            currentQuarterEstimate=_or_missing(nxt.eps_estimate),
            currentQuarterEstimateDate=code[:2],
            currentQuarterEstimateYear=int(code[2:]),
            earningsDate=[nxt.start],
            isEarningsDateEstimate=nxt.timing == "TMC",
        )
    return chart


def _financials_chart(c: Context) -> dict[str, Any]:
    f = c.f
    year_rev = f.revenue
    shares = float(f.shares) if f.shares else MISSING
    year = ny_date(c.now).year
    yearly = [
        {
            "date": year - k,
            "revenue": _times(year_rev, 1 / (1 + f.revenue_growth) ** k),
            "earnings": _times(shares, f.eps / 1.05**k),
        }
        for k in range(4, 0, -1)
    ]
    quarter_rev = _times(year_rev, 0.25)
    quarterly = [
        {
            "date": _quarter_code(e),
            "revenue": quarter_rev,
            "earnings": _times(shares, e.eps_actual_value),
        }
        for e in c.past
    ]
    return {"yearly": yearly, "quarterly": quarterly}


def _earnings(c: Context) -> dict[str, Any] | None:
    if not c.has_schedule:
        return None
    return {
        "maxAge": 86400,
        "earningsChart": _earnings_chart(c),
        "financialsChart": _financials_chart(c),
        "financialCurrency": "USD",
    }


def _history_entry(e: EarningsEvent, period: str) -> dict[str, Any]:
    est = e.eps_estimate
    actual = e.eps_actual_value
    return {
        "maxAge": 1,
        "epsActual": actual,
        "epsEstimate": _or_missing(est),
        "epsDifference": MISSING if est is None else _num(actual - est, 2),
        "surprisePercent": MISSING if est is None else _num((actual - est) / abs(est)),
        "quarter": _quarter_end(e),
        "currency": "USD",
        "period": period,
    }


def _earnings_history(c: Context) -> dict[str, Any] | None:
    if not c.has_schedule:
        return None
    n = len(c.past)
    history = [_history_entry(e, f"-{n - i}q") for i, e in enumerate(c.past)]
    return {"history": history, "maxAge": 86400}


def _calendar_events(c: Context) -> dict[str, Any]:
    f = c.f
    earnings: dict[str, Any] = {
        "earningsDate": [],
        "earningsCallDate": [],
        "isEarningsDateEstimate": False,
    }
    nxt = c.next
    if nxt is not None:
        estimate = nxt.timing == "TMC"
        earnings["earningsDate"] = [nxt.start, nxt.start + 3 * 86400] if estimate else [nxt.start]
        earnings["earningsCallDate"] = [] if estimate else [nxt.start + 1800]
        earnings["isEarningsDateEstimate"] = estimate
        est = nxt.eps_estimate
        earnings["earningsAverage"] = MISSING if est is None else est
        earnings["earningsLow"] = MISSING if est is None else _num(est - abs(est) * 0.1, 2)
        earnings["earningsHigh"] = MISSING if est is None else _num(est + abs(est) * 0.1, 2)
        q_rev = f.revenue / 4 if isinstance(f.revenue, float) else None
        earnings["revenueAverage"] = MISSING if q_rev is None else round(q_rev)
        earnings["revenueLow"] = MISSING if q_rev is None else round(q_rev * 0.95)
        earnings["revenueHigh"] = MISSING if q_rev is None else round(q_rev * 1.05)
    out: dict[str, Any] = {"maxAge": 1, "earnings": earnings}
    if f.dividend:
        today = ny_date(c.now)
        ex = dt.datetime.combine(today + dt.timedelta(days=20), dt.time(), dt.UTC)
        out["exDividendDate"] = int(ex.timestamp())
        out["dividendDate"] = int(ex.timestamp()) + 14 * 86400
    return out


BUILDERS: Final[dict[str, Callable[[Context], dict[str, Any] | None]]] = {
    "price": _price,
    "summaryDetail": _summary_detail,
    "quoteType": _quote_type,
    "assetProfile": _asset_profile,
    "defaultKeyStatistics": _default_key_statistics,
    "financialData": _financial_data,
    "calendarEvents": _calendar_events,
    "earnings": _earnings,
    "earningsHistory": _earnings_history,
}


def parse_modules(raw: str) -> list[str]:
    out: list[str] = []
    for part in raw.split(","):
        m = part.strip()
        if m and m not in out:
            out.append(m)
    return out


def build_result(
    emu: SummaryView, b: int, modules: list[str], now: float, formatted: bool
) -> dict[str, Any] | None:
    """``{module: {...}}`` for the modules with data (None when there is none)."""
    ctx = Context(emu, b, now)
    result: dict[str, Any] = {}
    for name in modules:
        builder = BUILDERS.get(name)
        data = builder(ctx) if builder is not None else None
        if data is None:
            continue
        raw_fmt = formatted or name in RAW_FMT_MODULES
        result[name] = {k: render_value(k, v, raw_fmt) for k, v in data.items()}
    return result or None


def _not_found(description: str) -> web.Response:
    return error_response(
        404, "Not Found", description, root="quoteSummary", operation=OP_FUNDAMENTALS
    )


async def handle_quote_summary(emu: SummaryView, request: web.Request) -> web.StreamResponse:
    cfg = emu.cfg
    q = request.query
    symbol = request.match_info["symbol"].strip().upper()
    request[N_SYMBOLS] = 1
    now = emu.now()
    if cfg.require_auth:
        cookie = cookie_from_header(request.headers.get("Cookie"))
        problem = emu.auth.check(cookie, q.get("crumb"), now, cfg)
        if problem is not None:
            return unauthorized(problem)
    modules = parse_modules(q.get("modules", ""))
    if not modules:
        return error_response(
            400,
            "Bad Request",
            'Missing value for the "modules" argument',
            root="quoteSummary",
            operation=OP_FUNDAMENTALS,
        )
    b = emu.universe.index.get(symbol, -1)
    if b < 0 or symbol in emu.delisted:
        return _not_found(NOT_FOUND.format(symbol))
    result = build_result(emu, b, modules, now, q.get("formatted", "false").lower() == "true")
    if result is None:
        return _not_found(NO_DATA.format(",".join(modules)))
    body = orjson.dumps({"quoteSummary": {"result": [result], "error": None}})
    return json_response(body, operation=OP_FUNDAMENTALS, cache=CACHE_QUOTE)


async def handle_timeseries(emu: SummaryView, request: web.Request) -> web.StreamResponse:
    """Every requested type answered as "no data" (``meta`` only)."""
    symbol = request.match_info["symbol"].strip().upper()
    request[N_SYMBOLS] = 1
    types = [t for t in request.query.getall("type", []) for t in t.split(",") if t.strip()]
    result = [{"meta": {"symbol": [symbol], "type": [t.strip()]}} for t in types]
    body = orjson.dumps({"timeseries": {"result": result, "error": None}})
    return json_response(body, operation=OP_TIMESERIES, cache=CACHE_ERROR)
