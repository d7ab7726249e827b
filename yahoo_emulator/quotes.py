"""``GET /v7/finance/quote``: the batch quote endpoint, built for speed.

Request handling (as Yahoo's v7 quote endpoint does it):

* ``symbols`` comma list (upper-cased, de-duplicated, request order kept); empty -> 400
  envelope; more than ``max_symbols`` -> plain-text 429. Then cookie + crumb (401
  ``Invalid Cookie`` / ``Invalid Crumb`` in the ``finance.error`` envelope).
* Unknown symbols are left out; ``delisted`` symbols come back as the ``quoteType: "NONE"`` stub;
  results are in request order.
* ``fields`` narrows the result, but :data:`BASE_FIELDS` always come back (``currency``,
  ``regularMarketVolume`` and ``regularMarketChangePercent`` are *not* among them).
* ``formatted=false`` (the default) gives plain scalars, whole numbers as JSON ints;
  ``formatted=true`` gives ``{raw, fmt}`` objects (:mod:`.fmt`).
* Units as Yahoo: ``regularMarketChangePercent`` in percent, the 52-week/average
  ``...ChangePercent`` fields as fractions, times in epoch seconds,
  ``firstTradeDateMilliseconds`` in ms.

Speed: per instrument, the static part of the JSON object (names, exchange, housekeeping) is
serialised once per distinct ``fields`` selection and cached as bytes; per request only the
dynamic columns are gathered from the market's numpy arrays (one fancy-index per column for
the whole batch), turned into row dicts and serialised with orjson, then spliced in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import orjson
from aiohttp import web

from yahoo_emulator import fmt
from yahoo_emulator.auth import AuthStore, cookie_from_header
from yahoo_emulator.config import INVALID_KINDS, EmulatorConfig
from yahoo_emulator.faults import Faults
from yahoo_emulator.market import Market, tz_info
from yahoo_emulator.poison import poison as poison_row
from yahoo_emulator.poison import raw_tokens
from yahoo_emulator.responses import (
    CACHE_QUOTE,
    FAULT,
    N_SYMBOLS,
    OP_QUOTE,
    error_response,
    json_response,
    too_many_requests,
    unauthorized,
)
from yahoo_emulator.rng import stable_hash
from yahoo_emulator.stats import Stats


class QuoteView(Protocol):
    """What the v7 quote handler uses of the emulator (:class:`.state.Emulator` has it all)."""

    @property
    def cfg(self) -> EmulatorConfig: ...

    @property
    def auth(self) -> AuthStore: ...

    @property
    def delisted(self) -> frozenset[str]: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def market(self) -> Market: ...

    @property
    def quotes(self) -> QuoteRenderer: ...

    @property
    def stats(self) -> Stats: ...

    def now(self) -> float: ...


F64 = npt.NDArray[np.float64]

BASE_FIELDS: Final = frozenset(
    {
        "language",
        "region",
        "quoteType",
        "typeDisp",
        "quoteSourceName",
        "triggerable",
        "customPriceAlertConfidence",
        "marketState",
        "regularMarketPrice",
        "regularMarketTime",
        "tradeable",
        "cryptoTradeable",
        "exchange",
        "exchangeTimezoneName",
        "exchangeTimezoneShortName",
        "gmtOffSetMilliseconds",
        "market",
        "esgPopulated",
        "priceHint",
        "fullExchangeName",
        "sourceInterval",
        "exchangeDataDelayedBy",
        "hasPrePostMarketData",
        "firstTradeDateMilliseconds",
        "symbol",
    }
)

CORE_KEYS: Final = (
    "marketState",
    "exchangeTimezoneShortName",
    "gmtOffSetMilliseconds",
    "regularMarketPrice",
    "regularMarketTime",
)
SESSION_KEYS: Final = (
    "regularMarketChange",
    "regularMarketChangePercent",
    "regularMarketVolume",
    "regularMarketOpen",
    "regularMarketDayHigh",
    "regularMarketDayLow",
    "regularMarketPreviousClose",
    "regularMarketDayRange",
    "bid",
    "ask",
    "bidSize",
    "askSize",
)
RANGE_KEYS: Final = (
    "fiftyTwoWeekLow",
    "fiftyTwoWeekHigh",
    "fiftyTwoWeekRange",
    "fiftyTwoWeekLowChange",
    "fiftyTwoWeekLowChangePercent",
    "fiftyTwoWeekHighChange",
    "fiftyTwoWeekHighChangePercent",
    "fiftyTwoWeekChangePercent",
    "fiftyDayAverageChange",
    "fiftyDayAverageChangePercent",
    "twoHundredDayAverageChange",
    "twoHundredDayAverageChangePercent",
    "priceToBook",
    "marketCap",
    "trailingPE",
    "forwardPE",
)
EXT_KEYS: Final = (
    "preMarketPrice",
    "preMarketChange",
    "preMarketChangePercent",
    "preMarketTime",
    "postMarketPrice",
    "postMarketChange",
    "postMarketChangePercent",
    "postMarketTime",
)
_MAX_SELECTIONS: Final = 16

Damage = list[tuple[int, str]]


def parse_symbols(raw: str) -> list[str]:
    """``"aapl, MSFT,,AAPL"`` -> ``["AAPL", "MSFT"]`` (upper case, de-duplicated, in order)."""
    out: list[str] = []
    seen: set[str] = set()
    for part in raw.split(","):
        s = part.strip().upper()
        if s and s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _nums(arr: F64) -> list[Any]:
    """Floats as a list, whole values as ints (Yahoo writes ``241``, not ``241.0``)."""
    out: list[Any] = arr.tolist()
    for i in np.flatnonzero((arr == np.trunc(arr)) & np.isfinite(arr)).tolist():
        out[i] = int(out[i])
    return out


@dataclass(frozen=True)
class Selection:
    """What a ``fields`` parameter selects: None = everything."""

    wanted: frozenset[str] | None
    slot: int
    session: bool
    ranges: bool
    extended: bool

    def keep(self, key: str) -> bool:
        return self.wanted is None or key in self.wanted


@dataclass(frozen=True)
class Rendered:
    body: bytes
    served: int  # quote objects in the result (stubs included)
    delisted: int
    unknown: int


class _Columns:
    """Per-request column builder: float columns are rounded (6 decimals) and converted to
    Python in one numpy pass, whole values becoming ints; optional columns skip some rows."""

    __slots__ = ("_fcols", "_fkeys", "_keys", "_n", "_opt", "_sel", "_vals")

    def __init__(self, sel: Selection, n: int) -> None:
        self._sel = sel
        self._n = n
        self._keys: list[str] = []
        self._vals: list[list[Any]] = []
        self._fkeys: list[str] = []
        self._fcols: list[F64] = []
        self._opt: list[tuple[str, list[Any], npt.NDArray[np.bool_]]] = []

    def wants(self, key: str) -> bool:
        return self._sel.keep(key)

    def raw(self, key: str, values: list[Any]) -> None:
        if self._sel.keep(key):
            self._keys.append(key)
            self._vals.append(values)

    def num(self, key: str, values: F64) -> None:
        if self._sel.keep(key):
            self._fkeys.append(key)
            self._fcols.append(values)

    def opt(self, key: str, values: list[Any], present: npt.NDArray[np.bool_]) -> None:
        if self._sel.keep(key):
            self._opt.append((key, values, present))

    def opt_num(self, key: str, values: F64, present: npt.NDArray[np.bool_]) -> None:
        if self._sel.keep(key):
            self.opt(key, _nums(np.round(values, 6)), present)

    def rows(self) -> list[dict[str, Any]]:
        keys, vals = self._keys, self._vals
        if self._fcols:
            mat = np.round(np.vstack(self._fcols), 6)
            lists: list[list[Any]] = mat.tolist()
            whole = (mat == np.trunc(mat)) & np.isfinite(mat)  # inf/nan stay floats (null)
            for r, c in np.argwhere(whole).tolist():
                lists[r][c] = int(lists[r][c])
            keys = keys + self._fkeys
            vals = vals + lists
        rows = [dict(zip(keys, row, strict=True)) for row in zip(*vals, strict=True)]
        if not rows:
            rows = [{} for _ in range(self._n)]
        for key, values, present in self._opt:
            for i in np.flatnonzero(present).tolist():
                rows[i][key] = values[i]
        return rows


class _RangeText:
    """``"241.0 - 245.41"`` strings (Python float repr, like Yahoo's), cached per instrument
    in numpy columns and rebuilt only for rows whose low or high changed (formatting floats
    is the expensive part)."""

    __slots__ = ("_hi", "_lo", "_text")

    def __init__(self) -> None:
        self._lo: F64 = np.zeros(0)
        self._hi: F64 = np.zeros(0)
        self._text: list[str] = []

    def _grow(self, need: int) -> None:
        size = max(need, 2 * len(self._lo), 1024)
        for name in ("_lo", "_hi"):
            col = np.full(size, np.nan)
            old = getattr(self, name)
            col[: len(old)] = old
            setattr(self, name, col)
        self._text.extend([""] * (size - len(self._text)))

    def __call__(self, p: npt.NDArray[np.intp], lo: F64, hi: F64) -> list[str]:
        if not len(p):
            return []
        need = int(p.max()) + 1
        if need > len(self._lo):
            self._grow(need)
        text = self._text
        stale = np.flatnonzero((self._lo[p] != lo) | (self._hi[p] != hi))
        if len(stale):
            where = p[stale]
            for i, a, b in zip(where.tolist(), lo[stale].tolist(), hi[stale].tolist(), strict=True):
                text[i] = f"{a!r} - {b!r}"
            self._lo[where] = lo[stale]
            self._hi[where] = hi[stale]
        return [text[i] for i in p.tolist()]


class QuoteRenderer:
    """Builds v7 quote bodies from the market. One per emulator; event-loop thread only.

    Static fields are cached per *listed* symbol (replicas share them; only ``symbol``
    differs), so 100k replica instruments cost a few MB, not hundreds."""

    def __init__(self, market: Market) -> None:
        self.m = market
        n = len(market.u)
        self._static: list[dict[str, Any] | None] = [None] * n
        self._frags: dict[int, list[bytes | None]] = {}
        self._sym: list[bytes | None] = []
        self._selections: OrderedDict[str, Selection] = OrderedDict()
        self._slots = 0
        self._stubs: dict[str, bytes] = {}
        self._day_range = _RangeText()
        self._year_range = _RangeText()

    # -- fields ------------------------------------------------------------------------------

    def selection(self, fields: str | None) -> Selection:
        key = fields or ""
        sel = self._selections.get(key)
        if sel is not None:
            self._selections.move_to_end(key)
            return sel
        wanted: frozenset[str] | None = None
        if key.strip():
            wanted = BASE_FIELDS | {f.strip() for f in key.split(",") if f.strip()}

        def any_of(keys: Sequence[str]) -> bool:
            return wanted is None or not wanted.isdisjoint(keys)

        sel = Selection(
            wanted, self._slots, any_of(SESSION_KEYS), any_of(RANGE_KEYS), any_of(EXT_KEYS)
        )
        self._slots += 1
        self._selections[key] = sel
        self._frags[sel.slot] = [None] * len(self.m.u)
        if len(self._selections) > _MAX_SELECTIONS:
            _, old = self._selections.popitem(last=False)
            self._frags.pop(old.slot, None)
        return sel

    # -- static part -------------------------------------------------------------------------

    def base_static(self, b: int) -> dict[str, Any]:
        """Static fields of listed symbol ``b`` (no ``symbol``), cached."""
        d = self._static[b]
        if d is None:
            d = self._build_static(b)
            self._static[b] = d
        return d

    def static_dict(self, pos: int) -> dict[str, Any]:
        """All static fields of instrument ``pos``, ``symbol`` included."""
        return {**self.base_static(int(self.m.base[pos])), "symbol": self.m.symbols[pos]}

    def _build_static(self, b: int) -> dict[str, Any]:
        """Static fields of listed symbol ``b`` (replicas share them), without ``symbol``."""
        u = self.m.u
        cap = int(u.market_cap[b])
        d: dict[str, Any] = {
            "language": "en-US",
            "region": "US",
            "quoteType": "EQUITY",
            "typeDisp": "Equity",
            "quoteSourceName": "Nasdaq Real Time Price",
            "triggerable": True,
            "customPriceAlertConfidence": "HIGH",
            "currency": "USD",
            "exchange": u.exchange[b],
            "shortName": u.short_name[b],
            "longName": u.name[b],
            "messageBoardId": u.message_board_id[b],
            "exchangeTimezoneName": "America/New_York",
            "market": "us_market",
            "esgPopulated": False,
            "corporateActions": [],
            "fullExchangeName": u.full_exchange_name[b],
            "financialCurrency": "USD",
            "averageDailyVolume3Month": int(u.avg_vol_3m[b]),
            "averageDailyVolume10Day": int(u.avg_vol_10d[b]),
            "epsTrailingTwelveMonths": _num(u.eps_ttm[b]),
            "epsForward": _num(u.eps_fwd[b]),
            "bookValue": _num(u.book_value[b]),
            "fiftyDayAverage": _num(u.avg_50d[b]),
            "twoHundredDayAverage": _num(u.avg_200d[b]),
            "sourceInterval": 15,
            "exchangeDataDelayedBy": 0,
            "hasPrePostMarketData": True,
            "firstTradeDateMilliseconds": int(u.first_trade_s[b]) * 1000,
            "priceHint": int(u.price_hint[b]),
            "tradeable": False,
            "cryptoTradeable": False,
        }
        if cap > 0:
            d["sharesOutstanding"] = int(u.shares_out[b])
        if u.analyst_rating[b]:
            d["averageAnalystRating"] = u.analyst_rating[b]
        if cap >= 10_000_000_000:
            d["displayName"] = u.short_name[b].split(" ")[0].rstrip(",")
        return d

    def _symbol_json(self, pos: int) -> bytes:
        sym = self._sym
        if pos >= len(sym):
            sym.extend([None] * (max(pos + 1, 2 * len(sym)) - len(sym)))
        j = sym[pos]
        if j is None:
            j = orjson.dumps({"symbol": self.m.symbols[pos]})[1:-1]
            sym[pos] = j
        return j

    def _base_fragment(self, b: int, sel: Selection) -> bytes:
        """Selected static members of listed symbol ``b`` plus a trailing comma (or b"")."""
        frags = self._frags[sel.slot]
        f = frags[b]
        if f is None:
            d = self.base_static(b)
            if sel.wanted is not None:
                d = {k: v for k, v in d.items() if k in sel.wanted}
            f = orjson.dumps(d)[1:-1] + b"," if d else b""
            frags[b] = f
        return f

    def fragment(self, pos: int, sel: Selection) -> bytes:
        """The static members of instrument ``pos`` as JSON (no braces) for a selection."""
        return self._base_fragment(int(self.m.base[pos]), sel) + self._symbol_json(pos)

    def _static_selected(self, pos: int, sel: Selection) -> dict[str, Any]:
        d = self.static_dict(pos)
        if sel.wanted is None:
            return d
        return {k: v for k, v in d.items() if k in sel.wanted}

    def stub(self, symbol: str) -> bytes:
        """The ``quoteType: NONE`` object of a delisted/renamed symbol."""
        b = self._stubs.get(symbol)
        if b is None:
            b = orjson.dumps(
                {
                    "language": "en-US",
                    "region": "US",
                    "quoteType": "NONE",
                    "triggerable": False,
                    "customPriceAlertConfidence": "NONE",
                    "corporateActions": [],
                    "messageBoardId": f"finmb_{stable_hash(symbol) % 900_000_000 + 10_000}",
                    "esgPopulated": False,
                    "hasPrePostMarketData": False,
                    "tradeable": False,
                    "cryptoTradeable": False,
                    "symbol": symbol,
                }
            )
            self._stubs[symbol] = b
        return b

    # -- dynamic part ------------------------------------------------------------------------

    def dynamic(self, positions: list[int], sel: Selection, now: float) -> list[dict[str, Any]]:
        """Row dicts of the moving fields for ``positions`` (market already synced)."""
        m = self.m
        n = len(positions)
        p = np.asarray(positions, dtype=np.intp)
        cols = _Columns(sel, n)
        state = m.state
        tzname, off = tz_info(now)
        px = m.reg_px[p]
        mt = m.market_time(now)
        cols.raw("marketState", [state] * n)
        cols.raw("exchangeTimezoneShortName", [tzname] * n)
        cols.raw("gmtOffSetMilliseconds", [off * 1000] * n)
        cols.num("regularMarketPrice", px)
        cols.raw("regularMarketTime", m.reg_t[p].tolist() if mt is None else [mt] * n)
        if sel.session:
            self._session_cols(p, px, cols)
        if sel.ranges:
            self._range_cols(p, px, cols)
        if sel.extended and state != "REGULAR":
            self._ext_cols(p, px, state, cols)
        return cols.rows()

    def _session_cols(self, p: npt.NDArray[np.intp], px: F64, cols: _Columns) -> None:
        m = self.m
        prev = m.prev_close[p]
        chg = px - prev
        cols.num("regularMarketChange", chg)
        cols.num("regularMarketChangePercent", chg / prev * 100.0)
        cols.raw("regularMarketVolume", m.day_vol[p].tolist())
        cols.num("regularMarketOpen", m.day_open[p])
        hi, lo = m.day_high[p], m.day_low[p]
        cols.num("regularMarketDayHigh", hi)
        cols.num("regularMarketDayLow", lo)
        cols.num("regularMarketPreviousClose", prev)
        if cols.wants("regularMarketDayRange"):
            cols.raw("regularMarketDayRange", self._day_range(p, lo, hi))
        scale = m.scale[p]
        half = np.maximum(np.round(px * 0.0002 * scale), 1.0) / scale
        cols.num("bid", np.round((px - half) * scale) / scale)
        cols.num("ask", np.round((px + half) * scale) / scale)
        t = m.reg_t[p]
        cols.raw("bidSize", (t % 7 + 1).tolist())
        cols.raw("askSize", (t // 7 % 9 + 1).tolist())

    def _range_cols(self, p: npt.NDArray[np.intp], px: F64, cols: _Columns) -> None:
        m, u = self.m, self.m.u
        b = m.base[p]
        lo = np.minimum(u.low_52w[b], px)
        hi = np.maximum(u.high_52w[b], px)
        cols.num("fiftyTwoWeekLow", lo)
        cols.num("fiftyTwoWeekHigh", hi)
        if cols.wants("fiftyTwoWeekRange"):
            cols.raw("fiftyTwoWeekRange", self._year_range(p, lo, hi))
        cols.num("fiftyTwoWeekLowChange", px - lo)
        cols.num("fiftyTwoWeekLowChangePercent", (px - lo) / lo)
        cols.num("fiftyTwoWeekHighChange", px - hi)
        cols.num("fiftyTwoWeekHighChangePercent", (px - hi) / hi)
        cols.num("fiftyTwoWeekChangePercent", (px / u.price_1y_ago[b] - 1.0) * 100.0)
        a50, a200 = u.avg_50d[b], u.avg_200d[b]
        cols.num("fiftyDayAverageChange", px - a50)
        cols.num("fiftyDayAverageChangePercent", (px - a50) / a50)
        cols.num("twoHundredDayAverageChange", px - a200)
        cols.num("twoHundredDayAverageChangePercent", (px - a200) / a200)
        cols.num("priceToBook", px / np.maximum(u.book_value[b], 1e-4))
        shares = u.shares_out[b]
        eps, fwd = u.eps_ttm[b], u.eps_fwd[b]
        if cols.wants("marketCap"):
            cols.opt("marketCap", np.rint(px * shares).astype(np.int64).tolist(), shares > 0)
        cols.opt_num("trailingPE", px / np.where(eps > 0, eps, 1.0), eps > 0)
        cols.opt_num("forwardPE", px / np.where(fwd > 0, fwd, 1.0), fwd > 0)

    def _ext_cols(self, p: npt.NDArray[np.intp], px: F64, state: str, cols: _Columns) -> None:
        m = self.m
        et = m.ext_t[p]
        has = et > 0
        if not has.any():
            return
        prefix = "preMarket" if state == "PRE" else "postMarket"
        ep = m.ext_px[p]
        chg = ep - px
        cols.opt_num(f"{prefix}Price", ep, has)
        cols.opt_num(f"{prefix}Change", chg, has)
        cols.opt_num(f"{prefix}ChangePercent", chg / px * 100.0, has)
        if cols.wants(f"{prefix}Time"):
            cols.opt(f"{prefix}Time", et.tolist(), has)

    # -- whole response ----------------------------------------------------------------------

    def render(
        self,
        symbols: Sequence[str],
        *,
        fields: str | None,
        formatted: bool,
        now: float,
        delisted: frozenset[str],
        damage: Callable[[int], Damage],
        poison: Callable[[list[str]], Damage] | None = None,
    ) -> Rendered:
        """The ``quoteResponse`` body for ``symbols`` (upper case, de-duplicated).

        ``poison`` picks the rows (by their symbols) that get an extreme value (plain answers
        only; :mod:`yahoo_emulator.poison`)."""
        sel = self.selection(fields)
        live = [s for s in symbols if s not in delisted] if delisted else list(symbols)
        positions = self.m.resolve(live)
        order = [p for p in positions if p >= 0]
        rows = self.dynamic(order, sel, now) if order else []
        for idx, kind in damage(len(rows)):
            _damage(rows[idx], kind, now)
        hits: Damage = []
        if poison is not None and rows and not formatted:
            row_symbols = [s for s, p in zip(live, positions, strict=True) if p >= 0]
            hits = poison(row_symbols)
            for idx, kind in hits:
                if kind in INVALID_KINDS:  # poison_symbols may also name an invalid kind
                    _damage(rows[idx], kind, now)
                else:
                    poison_row(rows[idx], kind, row_symbols[idx])
        if formatted:
            objects = [self._formatted(pos, row, sel) for pos, row in zip(order, rows, strict=True)]
        else:
            objects = self._plain(order, rows, sel)
        for idx, _ in hits:
            objects[idx] = raw_tokens(objects[idx])
        parts: list[bytes] = []
        n_delisted = 0
        it = iter(objects)
        for s, pos in (
            zip(live, positions, strict=True)
            if not delisted
            else self._walk(symbols, live, positions, delisted)
        ):
            if pos == -2:
                parts.append(self.stub(s))
                n_delisted += 1
            elif pos >= 0:
                parts.append(next(it))
        body = b'{"quoteResponse":{"result":[' + b",".join(parts) + b'],"error":null}}'
        return Rendered(body, len(parts), n_delisted, len(live) - len(order))

    @staticmethod
    def _walk(
        symbols: Sequence[str], live: list[str], positions: list[int], delisted: frozenset[str]
    ) -> list[tuple[str, int]]:
        """(symbol, position) in request order; position -2 marks a delisted stub."""
        pos_of = dict(zip(live, positions, strict=True))
        return [(s, -2 if s in delisted else pos_of[s]) for s in symbols]

    def _plain(self, order: list[int], rows: list[dict[str, Any]], sel: Selection) -> list[bytes]:
        frags = self._frags[sel.slot]
        sym = self._sym
        bases = self.m.base[order].tolist()
        dumps = orjson.dumps
        out: list[bytes] = []
        for pos, b, row in zip(order, bases, rows, strict=True):
            head = frags[b]
            if head is None:
                head = self._base_fragment(b, sel)
            sj = sym[pos] if pos < len(sym) else None
            if sj is None:
                sj = self._symbol_json(pos)
            out.append(b"{" + head + sj + b"," + dumps(row)[1:])
        return out

    def _formatted(self, pos: int, row: dict[str, Any], sel: Selection) -> bytes:
        full = {**self._static_selected(pos, sel), **row}
        hint = int(self.m.u.price_hint[int(self.m.base[pos])])
        return orjson.dumps(fmt.format_quote(full, hint))


def _num(x: float) -> float | int:
    v = float(x)
    return int(v) if v.is_integer() else v


def _damage(row: dict[str, Any], kind: str, now: float) -> None:
    """Make one quote invalid (fault ``fault_invalid_quote``) or stale (``fault_stale_quote``)."""
    price = row.get("regularMarketPrice", 0)
    if kind == "string_price":
        row["regularMarketPrice"] = repr(float(price))
    elif kind == "negative_volume":
        row["regularMarketVolume"] = -abs(int(row.get("regularMarketVolume", 0))) - 100
    elif kind == "zero_price":
        row["regularMarketPrice"] = 0
    elif kind == "huge_price":
        row["regularMarketPrice"] = 987654321.5
    elif kind == "string_time":
        row["regularMarketTime"] = str(row.get("regularMarketTime", int(now)))
    elif kind.startswith("stale:"):
        row["regularMarketTime"] = int(now - float(kind.partition(":")[2]))


# -- HTTP handler ------------------------------------------------------------------------------


async def handle_quote(emu: QuoteView, request: web.Request) -> web.StreamResponse:
    cfg = emu.cfg
    q = request.query
    symbols = parse_symbols(q.get("symbols", ""))
    request[N_SYMBOLS] = len(symbols)
    if not symbols:
        return error_response(400, "Bad Request", "Missing required query parameter=symbols")
    if cfg.max_symbols and len(symbols) > cfg.max_symbols:
        return too_many_requests(cfg)
    now = emu.now()
    if cfg.require_auth:
        cookie = cookie_from_header(request.headers.get("Cookie"))
        problem = emu.auth.check(cookie, q.get("crumb"), now, cfg)
        if problem is not None:
            return unauthorized(problem)
    regular = emu.market.sync(now) == "REGULAR"
    damaged: Damage = []

    def damage(n: int) -> Damage:
        damaged.extend(emu.faults.quote_damage(cfg, n, regular=regular))
        return damaged

    poisoned: Damage = []

    def poison(row_symbols: list[str]) -> Damage:
        poisoned.extend(emu.faults.poison_rows(cfg, row_symbols))
        return poisoned

    out = emu.quotes.render(
        symbols,
        fields=q.get("fields"),
        formatted=q.get("formatted", "false").lower() == "true",
        now=now,
        delisted=emu.delisted,
        damage=damage,
        poison=poison,
    )
    stats = emu.stats
    stats.symbols_requested += len(symbols)
    stats.symbols_served += out.served
    stats.symbols_unknown += out.unknown
    stats.symbols_delisted += out.delisted
    if damaged or poisoned:
        kinds = ["stale_quote" if k.startswith("stale:") else "invalid_quote" for _, k in damaged]
        kinds += ["poison_quote"] * len(poisoned)
        for kind in kinds[1:]:
            stats.faults[kind] += 1
        request[FAULT] = kinds[0]
    return json_response(out.body, operation=OP_QUOTE, cache=CACHE_QUOTE)
