#!/usr/bin/env python3
"""Build ``yahoo_emulator/data/stocks.csv`` (the emulator's symbol universe) from the Nasdaq
screener dump ``us-listed-stocks.csv``.

What it does, row by row (every row is kept, in source order = market cap, largest first):

* **Symbol -> Yahoo notation.** Nasdaq writes share classes ``BRK/B``, preferreds ``ABR^D`` (or a
  bare trailing ``^`` for an unlettered series, ``DCOM^``) and NYSE warrants ``RAC/WS``; Yahoo
  writes ``BRK-B``, ``ABR-PD``, ``DCOM-P`` and ``RAC-WT``. Nasdaq-listed warrants/rights/units
  (``RGTIW``, ``AACPR``, ``BTSGU``) are already plain letters on both sides.
* **Exchange -> Yahoo code and ``fullExchangeName``.** NYSE -> ``NYQ``/``NYSE``; AMEX (NYSE
  American) -> ``ASE``/``NYSE American``. The screener does not say which Nasdaq tier a stock is
  on, so the tier is inferred from market cap: >= $1.5B ``NMS``/``NasdaqGS``, >= $300M
  ``NGM``/``NasdaqGM``, else ``NCM``/``NasdaqCM`` (a heuristic; real tiers differ for some names).
* **Names.** ``name`` is Yahoo's ``longName`` style: the screener's security description
  ("Common Stock", "Class A Ordinary Shares", "Sponsored ADR", ...) is cut off common equity;
  preferreds, notes, warrants, rights and units keep their full description. ``short_name`` is
  ``name`` cut to 32 characters at a word boundary.
* Numbers are copied as they are (``pct_change`` empty -> 0, ``market_cap`` empty -> 0 meaning
  unknown).

Usage::

    python tools/make_emulator_data.py [--src /work/shared/data/us-listed-stocks.csv]
                                       [--out yahoo_emulator/data/stocks.csv]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SRC = Path("/work/shared/data/us-listed-stocks.csv")
DEFAULT_OUT = ROOT / "yahoo_emulator" / "data" / "stocks.csv"

COLUMNS = (
    "symbol",
    "nasdaq_symbol",
    "name",
    "short_name",
    "exchange",
    "full_exchange_name",
    "last_sale",
    "pct_change",
    "volume",
    "market_cap",
    "country",
    "sector",
    "industry",
)

_CLASS_SUFFIX = {"WS": "WT"}  # NYSE warrants: Nasdaq "/WS", Yahoo "-WT"

# Security descriptions Nasdaq appends to common equity; everything from the match on is cut.
_EQUITY_TAIL = re.compile(
    r"\s+(?:(?:Class|Series) [A-Z]\s+)?(?:"
    r"Common Stock|Common Shares?|Ordinary Shares?|Capital Stock|American Depositary Shares?|"
    r"American Depository Shares?|Sponsored ADR|Sponosred ADR|ADS|ADR|"
    r"New York Registry Shares|NY Registry Shares|Subordinate Voting Shares|"
    r"Limited Voting Shares|Common Units|Shares of Beneficial Interest|"
    r"Common Shares of Beneficial Interest"
    r")\b.*$",
    re.IGNORECASE,
)
_NOT_COMMON = re.compile(
    r"Preferred|(?<!American )Depositary Shares|Notes?\b|Debentures|Warrants?\b|Rights?\b|"
    r"(?<!Common )Units?\b|%",
    re.IGNORECASE,
)


def yahoo_symbol(nasdaq_symbol: str) -> str:
    """Nasdaq screener notation -> Yahoo notation (``BRK/B``->``BRK-B``, ``ABR^D``->``ABR-PD``)."""
    s = nasdaq_symbol.strip().upper()
    if "^" in s:
        base, _, series = s.partition("^")
        return f"{base}-P{series}"
    if "/" in s:
        base, _, cls = s.partition("/")
        return f"{base}-{_CLASS_SUFFIX.get(cls, cls)}"
    return s


def yahoo_exchange(exchange: str, market_cap: float) -> tuple[str, str]:
    """(Yahoo exchange code, fullExchangeName) for a screener exchange name."""
    ex = exchange.strip().upper()
    if ex == "NYSE":
        return "NYQ", "NYSE"
    if ex == "AMEX":
        return "ASE", "NYSE American"
    if ex == "NASDAQ":
        if market_cap >= 1.5e9:
            return "NMS", "NasdaqGS"
        if market_cap >= 3e8:
            return "NGM", "NasdaqGM"
        return "NCM", "NasdaqCM"
    raise ValueError(f"unknown exchange {exchange!r}")


def long_name(name: str) -> str:
    """Screener name -> Yahoo-style longName (security description cut off common equity)."""
    n = " ".join(name.split())
    cut = _EQUITY_TAIL.sub("", n).strip()
    if not cut or _NOT_COMMON.search(cut):
        return n  # not common equity: the description is the name
    return cut


def short_name(name: str, limit: int = 32) -> str:
    if len(name) <= limit:
        return name
    head = name[:limit]
    return head.rsplit(" ", 1)[0] if " " in head else head


def _num(text: str, default: float = 0.0) -> float:
    text = text.strip()
    return float(text) if text else default


def convert(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    for row in rows:
        sym = yahoo_symbol(row["symbol"])
        if sym in seen:
            raise ValueError(f"{row['symbol']!r} and {seen[sym]!r} both map to {sym!r}")
        seen[sym] = row["symbol"]
        cap = _num(row["market_cap"])
        code, full = yahoo_exchange(row["exchange"], cap)
        name = long_name(row["name"])
        out.append(
            {
                "symbol": sym,
                "nasdaq_symbol": row["symbol"].strip(),
                "name": name,
                "short_name": short_name(name),
                "exchange": code,
                "full_exchange_name": full,
                "last_sale": row["last_sale"].strip(),
                "pct_change": repr(_num(row["pct_change"])),
                "volume": str(int(_num(row["volume"]))),
                "market_cap": str(int(cap)),
                "country": row["country"].strip(),
                "sector": row["sector"].strip(),
                "industry": row["industry"].strip(),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    with args.src.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = convert(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(out)
    print(f"wrote {len(out)} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
