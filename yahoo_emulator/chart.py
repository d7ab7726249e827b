"""``GET /v8/finance/chart/{symbol}``: OHLCV history consistent with the live quote.

Shape (as Yahoo answers it): ``{"chart": {"result": [{"meta", "timestamp",
"indicators": {"quote": [{open, high, low, close, volume}], "adjclose": [...]}}], "error":
null}}``; ``adjclose`` only for daily-or-longer intervals, ``tradingPeriods`` only for intraday
ones (a list of per-day regular periods, or ``{pre, regular, post}`` with ``includePrePost``),
``previousClose``/``scale`` only intraday. With no bars ``timestamp`` is absent and
``indicators.quote`` is ``[{}]``. Prices are float32 values written as doubles, like Yahoo's.
Unknown or delisted symbols get the 404 ``No data found, symbol may be delisted`` envelope;
a bad ``interval``/``range``/period gets a 400 envelope; intraday requests beyond Yahoo's
look-back limits (1m: 8 days per request within 30 days; 2m-90m: 60 days; 1h: 730 days) a 422.
No crumb is required.

Bars: the bar of the current (or last) session is the live quote (day open/high/low, the
current regular price, the day volume). Earlier days are a deterministic backward walk
anchored on the quote's previous close, drawn from (seed, instrument, day) hashes, so every
request sees the same history and the last bar always matches the quote. Intraday bars are a
Brownian bridge from each day's open to its close; coarser intervals aggregate 1-minute or
daily bars. No dividends or splits are emitted.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import orjson
from aiohttp import web

from yahoo_emulator import rng
from yahoo_emulator.market import Market, is_trading_day, ny_date, session_for, tz_info
from yahoo_emulator.responses import CACHE_CHART, N_SYMBOLS, OP_CHART, error_response, json_response
from yahoo_emulator.universe import TRADING_SECONDS


class ChartView(Protocol):
    """What the chart handler uses of the emulator (:class:`.state.Emulator` has it all)."""

    @property
    def charts(self) -> ChartBuilder: ...

    @property
    def delisted(self) -> frozenset[str]: ...

    @property
    def market(self) -> Market: ...

    def now(self) -> float: ...


F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

VALID_INTERVALS: Final = (
    "1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo",
)  # fmt: skip
VALID_RANGES: Final = ("1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max")
INTRADAY_MINUTES: Final = {
    "1m": 1, "2m": 2, "5m": 5, "15m": 15, "30m": 30, "60m": 60, "90m": 90, "1h": 60,
}  # fmt: skip
_CUSTOM_RANGE: Final = re.compile(r"^(\d{1,4})(d|wk|mo|y)$")
_DRIFT: Final = 0.0003  # daily log drift of the backward walk (prices were lower in the past)
_EPOCH: Final = dt.date(1970, 1, 1)


class ChartError(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


@dataclass
class Bars:
    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: I64

    @classmethod
    def empty(cls) -> Bars:
        z = np.zeros(0)
        zi = np.zeros(0, dtype=np.int64)
        return cls(zi, z, z, z, z, zi)

    def __len__(self) -> int:
        return len(self.ts)

    def select(self, mask: npt.NDArray[np.bool_]) -> Bars:
        return Bars(
            self.ts[mask], self.open[mask], self.high[mask], self.low[mask],
            self.close[mask], self.volume[mask],
        )  # fmt: skip


@dataclass(frozen=True)
class Window:
    start: dt.date
    end: dt.date
    p1: float  # bars must satisfy p1 <= ts < p2
    p2: float
    range: str


def _epoch_day(d: dt.date) -> int:
    return (d - _EPOCH).days


def trading_days(start: dt.date, end: dt.date, extra: dt.date | None = None) -> list[dt.date]:
    """Weekdays in [start, end] (plus ``extra`` if it is in range: a forced weekend session)."""
    if end < start:
        return []
    a = np.datetime64(start, "D")
    b = np.datetime64(end + dt.timedelta(days=1), "D")
    days = np.arange(a, b, dtype="datetime64[D]")
    days = days[np.is_busday(days)]
    out: list[dt.date] = days.astype(object).tolist()
    if extra is not None and start <= extra <= end and not is_trading_day(extra):
        out.append(extra)
    return out


def _months_back(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    m += 1
    return dt.date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _f32(a: F64) -> list[float]:
    out: list[float] = a.astype(np.float32).astype(np.float64).tolist()
    return out


class ChartBuilder:
    """Builds chart bodies from the market state. Event-loop thread only."""

    def __init__(self, market: Market) -> None:
        self.m = market

    # -- request -> window ---------------------------------------------------------------

    def window(self, q: Mapping[str, str], now: float, session: dt.date, first: dt.date) -> Window:
        if "period1" in q or "period2" in q:
            try:
                p1 = float(int(q.get("period1", "0")))
                p2 = float(int(q.get("period2", str(int(now)))))
            except ValueError:
                raise ChartError(400, "Bad Request", "Invalid input - period1/period2") from None
            if p2 < p1:
                raise ChartError(
                    400,
                    "Bad Request",
                    f"Invalid input - start date cannot be after end date. "
                    f"startDate = {int(p1)}, endDate = {int(p2)}",
                )
            lo = dt.datetime.fromtimestamp(max(p1, 0.0), dt.UTC).date() - dt.timedelta(days=1)
            hi = dt.datetime.fromtimestamp(max(p2, 0.0), dt.UTC).date() + dt.timedelta(days=1)
            return Window(max(lo, first), min(hi, session), p1, p2, "")
        rng_s = q.get("range", "1mo")
        return Window(self._range_start(rng_s, session, first), session, -math.inf, math.inf, rng_s)

    @staticmethod
    def _range_start(r: str, session: dt.date, first: dt.date) -> dt.date:
        if r == "max":
            return first
        if r == "ytd":
            return max(dt.date(session.year, 1, 1), first)
        m = _CUSTOM_RANGE.match(r)
        if m is None:
            raise ChartError(
                400,
                "Bad Request",
                f"Invalid input - range={r} is not supported. Valid ranges: "
                f"[{', '.join(VALID_RANGES)}]",
            )
        n, unit = int(m.group(1)), m.group(2)
        if unit == "d":
            days = trading_days(session - dt.timedelta(days=3 * n + 7), session, session)
            start = days[-n] if len(days) >= n else days[0]
        elif unit == "wk":
            start = session - dt.timedelta(weeks=n)
        elif unit == "mo":
            start = _months_back(session, n) + dt.timedelta(days=1)
        else:
            start = _months_back(session, 12 * n) + dt.timedelta(days=1)
        return max(start, first)

    @staticmethod
    def check_limits(interval: str, w: Window, now: float) -> None:
        if interval not in INTRADAY_MINUTES:
            return
        start_s = w.p1 if math.isfinite(w.p1) else session_for(w.start).pre_start
        end_s = w.p2 if math.isfinite(w.p2) else now
        if interval == "1m":
            if end_s - start_s > 8 * 86_400 or start_s < now - 30 * 86_400:
                raise ChartError(
                    422,
                    "Unprocessable Entity",
                    f"1m data not available for startTime={int(start_s)} and endTime="
                    f"{int(end_s)}. Only 8 days worth of 1m granularity data are allowed to be "
                    "fetched per request.",
                )
            return
        days = 730 if interval in ("1h", "60m") else 60
        if start_s < now - days * 86_400:
            raise ChartError(
                422,
                "Unprocessable Entity",
                f"{interval} data not available for startTime={int(start_s)} and endTime="
                f"{int(end_s)}. The requested range must be within the last {days} days.",
            )

    # -- bars ------------------------------------------------------------------------------

    def _history(self, pos: int, days: list[dt.date]) -> Bars:
        """Daily bars of finished sessions ``days`` (ascending, ending the day before the
        current session), anchored on the instrument's previous close."""
        m = self.m
        n = len(days)
        if n == 0:
            return Bars.empty()
        seed = m.cfg.seed
        ident = int(m.ids[pos])
        ordinals = np.fromiter((_epoch_day(d) for d in days), dtype=np.uint64, count=n)
        z1, z2 = rng.normals(ordinals, seed, rng.DAILY, ident)
        z3, z4 = rng.normals(ordinals, seed, rng.DAILY + 2, ident)
        sig = float(m.daily_vol[pos])
        r = _DRIFT + sig * z1
        tail = np.cumsum(r[::-1])[::-1]
        log_close = math.log(float(m.prev_close[pos])) - (tail - r)
        close = np.exp(log_close)
        opn = np.exp(log_close - r + 0.25 * sig * z2)
        high = np.maximum(opn, close) * np.exp(0.4 * sig * np.abs(z3))
        low = np.minimum(opn, close) * np.exp(-0.4 * sig * np.abs(z4))
        base_vol = float(m.u.volume[int(m.base[pos])])
        vol = np.rint(base_vol * np.exp(0.35 * z4 - 0.06)).astype(np.int64)
        scale = float(m.scale[pos])
        ts = np.fromiter((session_for(d).open for d in days), dtype=np.int64, count=n)
        return Bars(
            ts, _tick(opn, scale), _tick(high, scale), _tick(low, scale), _tick(close, scale), vol
        )

    def _live_bar(self, pos: int, day: dt.date) -> Bars:
        m = self.m
        return Bars(
            np.array([session_for(day).open], dtype=np.int64),
            np.array([m.day_open[pos]]),
            np.array([m.day_high[pos]]),
            np.array([m.day_low[pos]]),
            np.array([m.reg_px[pos]]),
            np.array([m.day_vol[pos]], dtype=np.int64),
        )

    def daily(self, pos: int, start: dt.date, session: dt.date) -> Bars:
        """Daily bars from a week before ``start`` up to the current session (live bar last)."""
        lead = start - dt.timedelta(days=7)
        days = [d for d in trading_days(lead, session, session) if d < session]
        bars = self._history(pos, days)
        if start <= session:
            bars = _concat(bars, self._live_bar(pos, session))
        return bars

    @staticmethod
    def close_before(all_days: Bars, ts: float, default: float) -> float:
        """Close of the last daily bar stamped before ``ts`` (``chartPreviousClose``)."""
        i = int(np.searchsorted(all_days.ts, ts, side="left"))
        return float(all_days.close[i - 1]) if i > 0 else default

    def intraday(
        self, pos: int, day_bars: Bars, prev_close: float, now: float, prepost: bool, minutes: int
    ) -> tuple[Bars, list[dict[str, list[dict[str, Any]]]]]:
        """Intraday bars of ``minutes`` for every day of ``day_bars`` + their trading periods.

        Each session segment (pre 04:00, regular 09:30, post 16:00) is a one-minute Brownian
        bridge (regular: day open -> day close), aggregated into buckets aligned on the
        segment start (so hourly bars are 09:30, 10:30, ... like Yahoo's)."""
        m = self.m
        seed = m.cfg.seed
        ident = int(m.ids[pos])
        sig = float(m.daily_vol[pos]) / math.sqrt(TRADING_SECONDS / 60)
        scale = float(m.scale[pos])
        out: list[Bars] = []
        periods: list[dict[str, list[dict[str, Any]]]] = []
        last_close = prev_close
        for i in range(len(day_bars)):
            s = session_for(dt.datetime.fromtimestamp(int(day_bars.ts[i]), dt.UTC).date())
            o, c = float(day_bars.open[i]), float(day_bars.close[i])
            vol = float(day_bars.volume[i])
            step = int(s.open // 86_400) * 4
            segs = [(s.open, s.close, o, c, 1.0, vol, step + 2)]
            if prepost:
                segs.insert(0, (s.pre_start, s.open, last_close, o, 0.3, vol * 0.02, step + 1))
                segs.append((s.close, s.post_end, c, c, 0.3, vol * 0.02, step + 3))
            for start, end, a, b, k, v, key in segs:
                nbars = max(0, math.ceil((min(end, now) - start) / 60))
                if nbars:
                    one = _bridge(start, nbars, a, b, sig * k, v, scale, (seed, ident, key))
                    out.append(_aggregate_minutes(one, start, minutes))
            periods.append(_periods(s))
            last_close = c
        return (_concat(*out) if out else Bars.empty()), periods

    # -- response ------------------------------------------------------------------------

    def build(self, pos: int, q: Mapping[str, str], now: float) -> bytes:
        """The chart body for instrument ``pos`` (market already synced). Raises ChartError."""
        m = self.m
        interval = q.get("interval", "1d")
        if interval not in VALID_INTERVALS:
            raise ChartError(
                400,
                "Bad Request",
                f"Invalid input - interval={interval} is not supported. Valid intervals: "
                f"[{', '.join(VALID_INTERVALS)}]",
            )
        prepost = q.get("includePrePost", "false").lower() == "true"
        session = m.session_day(now)
        b = int(m.base[pos])
        first = dt.datetime.fromtimestamp(int(m.u.first_trade_s[b]), dt.UTC).date()
        w = self.window(q, now, session, first)
        self.check_limits(interval, w, now)
        all_days = self.daily(pos, w.start, session) if w.start <= w.end else Bars.empty()
        in_window = (all_days.ts >= session_for(w.start).open) & (
            all_days.ts < session_for(w.end).close
        )
        day_bars = all_days.select(in_window)
        fallback = float(m.prev_close[pos])
        periods: list[dict[str, list[dict[str, Any]]]] = []
        if interval in INTRADAY_MINUTES:
            minutes = INTRADAY_MINUTES[interval]
            first_close = self.close_before(
                all_days, float(day_bars.ts[0]) if len(day_bars) else now, fallback
            )
            bars, periods = self.intraday(pos, day_bars, first_close, now, prepost, minutes)
        else:
            bars = _aggregate_days(day_bars, interval)
        bars = bars.select((bars.ts >= w.p1) & (bars.ts < w.p2)) if len(bars) else bars
        prev_close = self.close_before(all_days, float(bars.ts[0]) if len(bars) else now, fallback)
        meta = self._meta(
            pos, now, interval, w.range, prev_close, bool(len(bars)), periods, prepost
        )
        result: dict[str, Any] = {"meta": meta}
        intraday = interval in INTRADAY_MINUTES
        if len(bars):
            result["timestamp"] = bars.ts.tolist()
            quote = {
                "open": _f32(bars.open), "high": _f32(bars.high), "low": _f32(bars.low),
                "close": _f32(bars.close), "volume": bars.volume.tolist(),
            }  # fmt: skip
            result["indicators"] = {"quote": [quote]}
            if not intraday:
                result["indicators"]["adjclose"] = [{"adjclose": quote["close"]}]
        else:
            result["indicators"] = (
                {"quote": [{}]} if intraday else {"quote": [{}], "adjclose": [{}]}
            )
        return orjson.dumps({"chart": {"result": [result], "error": None}})

    def _meta(
        self,
        pos: int,
        now: float,
        interval: str,
        range_s: str,
        prev_close: float,
        has_bars: bool,
        periods: list[dict[str, list[dict[str, Any]]]],
        prepost: bool,
    ) -> dict[str, Any]:
        m, u = self.m, self.m.u
        b = int(m.base[pos])
        tzname, off = tz_info(now)
        px = float(m.reg_px[pos])
        mt = m.market_time(now)
        meta: dict[str, Any] = {
            "currency": "USD",
            "symbol": m.symbols[pos],
            "exchangeName": u.exchange[b],
            "fullExchangeName": u.full_exchange_name[b],
            "instrumentType": "EQUITY",
            "firstTradeDate": int(u.first_trade_s[b]),
            "regularMarketTime": int(m.reg_t[pos]) if mt is None else mt,
            "hasPrePostMarketData": True,
            "gmtoffset": off,
            "timezone": tzname,
            "exchangeTimezoneName": "America/New_York",
            "regularMarketPrice": _num(px),
            "fiftyTwoWeekHigh": _num(max(float(u.high_52w[b]), px)),
            "fiftyTwoWeekLow": _num(min(float(u.low_52w[b]), px)),
            "regularMarketDayHigh": _num(float(m.day_high[pos])),
            "regularMarketDayLow": _num(float(m.day_low[pos])),
            "regularMarketVolume": int(m.day_vol[pos]),
            "longName": u.name[b],
            "shortName": u.short_name[b],
            "chartPreviousClose": _num(round(prev_close, 4)),
        }
        if interval in INTRADAY_MINUTES:
            meta["previousClose"] = _num(float(m.prev_close[pos]))
            meta["scale"] = 3
        meta["priceHint"] = int(u.price_hint[b])
        meta["currentTradingPeriod"] = _current_period(now)
        if interval in INTRADAY_MINUTES and has_bars:
            if prepost:
                meta["tradingPeriods"] = {
                    k: [p[k] for p in periods] for k in ("pre", "regular", "post")
                }
            else:
                meta["tradingPeriods"] = [p["regular"] for p in periods]
        meta["dataGranularity"] = interval
        meta["range"] = range_s
        meta["validRanges"] = list(VALID_RANGES)
        return meta


def _tick(a: F64, scale: float) -> F64:
    """Round to the price tick (1/scale), never below one tick."""
    out: F64 = np.maximum(np.round(a * scale) / scale, 1.0 / scale)
    return out


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _period(start: int, end: int) -> dict[str, Any]:
    tzname, off = tz_info(start)
    return {"timezone": tzname, "start": start, "end": end, "gmtoffset": off}


def _periods(s: Any) -> dict[str, list[dict[str, Any]]]:
    return {
        "pre": [_period(s.pre_start, s.open)],
        "regular": [_period(s.open, s.close)],
        "post": [_period(s.close, s.post_end)],
    }


def _current_period(now: float) -> dict[str, Any]:
    """Today's pre/regular/post periods (the next weekday's on a weekend)."""
    day = ny_date(now)
    while not is_trading_day(day):
        day += dt.timedelta(days=1)
    return {k: v[0] for k, v in _periods(session_for(day)).items()}


def _concat(*parts: Bars) -> Bars:
    return Bars(
        np.concatenate([p.ts for p in parts]),
        np.concatenate([p.open for p in parts]),
        np.concatenate([p.high for p in parts]),
        np.concatenate([p.low for p in parts]),
        np.concatenate([p.close for p in parts]),
        np.concatenate([p.volume for p in parts]),
    )


def _bridge(
    start: int,
    n: int,
    a: float,
    b: float,
    sig: float,
    volume: float,
    scale: float,
    key: tuple[int, int, int],
) -> Bars:
    """``n`` one-minute bars from ``start``: a log-space Brownian bridge from ``a`` to ``b``."""
    seed, ident, step = key
    idx = np.arange(n + 1, dtype=np.uint64)
    z1, z2 = rng.normals(idx, seed, rng.INTRADAY, ident ^ (step << 20))
    w = np.concatenate([[0.0], np.cumsum(sig * z1[:n])])
    frac = np.arange(n + 1) / n
    logp = math.log(a) + (math.log(b) - math.log(a)) * frac + (w - frac * w[-1])
    path = np.exp(logp)
    opn, cls = path[:-1], path[1:]
    wiggle = np.exp(0.5 * sig * np.abs(z2[:n]))
    high = np.maximum(opn, cls) * wiggle
    low = np.minimum(opn, cls) / wiggle
    x = (np.arange(n) + 0.5) / n
    weight = (1.0 + 3.0 * (x - 0.5) ** 2) * np.exp(0.3 * z2[1:] - 0.045)
    vol = np.rint(volume * weight / weight.sum()).astype(np.int64)
    ts = start + 60 * np.arange(n, dtype=np.int64)
    return Bars(
        ts, _tick(opn, scale), _tick(high, scale), _tick(low, scale), _tick(cls, scale), vol
    )


def _group(bars: Bars, keys: I64) -> Bars:
    """Aggregate consecutive bars sharing a key (keys ascending)."""
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    ends = np.concatenate([starts[1:], [len(keys)]]) - 1
    return Bars(
        keys[starts],
        bars.open[starts],
        np.maximum.reduceat(bars.high, starts),
        np.minimum.reduceat(bars.low, starts),
        bars.close[ends],
        np.add.reduceat(bars.volume, starts),
    )


def _aggregate_minutes(bars: Bars, start: int, minutes: int) -> Bars:
    """One segment's 1-minute bars into ``minutes`` buckets aligned on ``start``."""
    if minutes == 1 or not len(bars):
        return bars
    width = 60 * minutes
    return _group(bars, start + (bars.ts - start) // width * width)


def _aggregate_days(bars: Bars, interval: str) -> Bars:
    if interval == "1d" or not len(bars):
        return bars
    days = [dt.datetime.fromtimestamp(int(t), dt.UTC).date() for t in bars.ts.tolist()]
    if interval == "5d":
        keys = bars.ts[(np.arange(len(bars)) // 5) * 5]
        return _group(bars, keys)
    if interval == "1wk":
        starts = [d - dt.timedelta(days=d.weekday()) for d in days]
    elif interval == "1mo":
        starts = [d.replace(day=1) for d in days]
    else:
        starts = [d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1) for d in days]
    keys = np.fromiter((session_for(s).pre_start - 4 * 3600 for s in starts), dtype=np.int64)
    return _group(bars, keys)


# -- HTTP handler ------------------------------------------------------------------------------

NOT_FOUND: Final = "No data found, symbol may be delisted"


async def handle_chart(emu: ChartView, request: web.Request) -> web.StreamResponse:
    symbol = request.match_info["symbol"].strip().upper()
    request[N_SYMBOLS] = 1
    now = emu.now()
    emu.market.sync(now)
    pos = -1 if symbol in emu.delisted else emu.market.resolve([symbol])[0]
    if pos < 0:
        return error_response(404, "Not Found", NOT_FOUND, root="chart", operation=OP_CHART)
    try:
        body = emu.charts.build(pos, request.query, now)
    except ChartError as exc:
        return error_response(
            exc.status, exc.code, exc.description, root="chart", operation=OP_CHART
        )
    return json_response(body, operation=OP_CHART, cache=CACHE_CHART)
