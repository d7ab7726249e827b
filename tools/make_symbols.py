"""Regenerate ``symbols.json``: the N largest US-listed stocks by market cap, in Yahoo notation.

Dev tool (reads the Nasdaq-screener export, which tests must not)::

    .venv/bin/python tools/make_symbols.py \\
        --csv /work/shared/data/us-listed-stocks.csv --count 5000 --out symbols.json
    .venv/bin/python tools/make_symbols.py --csv ... --check   # exit 1 if symbols.json is stale

Rows are ranked by ``market_cap`` (descending, ties by symbol); rows whose market cap is 0 or
blank are used only if there are not enough others. Symbols are converted with
:func:`engine.source.notation.nasdaq_to_yahoo` and must pass
:func:`engine.source.notation.check_symbol`. The
output is a JSON list with one object per line (``symbol``, ``name``, ``sector``, ``exchange``),
so the loader's line numbers point at a symbol.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

try:
    from engine.source.notation import check_symbol, nasdaq_to_yahoo
    from engine.source.universe import load_symbols
except ImportError:  # run as a script from a checkout: put the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from engine.source.notation import check_symbol, nasdaq_to_yahoo
    from engine.source.universe import load_symbols


def _market_cap(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return 0.0


def select_rows(rows: list[dict[str, str]], count: int) -> list[dict[str, str]]:
    """The ``count`` largest by market cap (ties by symbol), zero-cap rows only if needed."""
    ranked = sorted(rows, key=lambda r: (-_market_cap(r["market_cap"]), r["symbol"]))
    with_cap = [r for r in ranked if _market_cap(r["market_cap"]) > 0]
    without = [r for r in ranked if _market_cap(r["market_cap"]) <= 0]
    return (with_cap + without)[:count]


def to_entries(rows: list[dict[str, str]]) -> list[dict[str, str | None]]:
    """Yahoo-notation entries; raises SystemExit on a symbol that cannot be converted."""
    entries: list[dict[str, str | None]] = []
    seen: dict[str, str] = {}
    for r in rows:
        try:
            sym = nasdaq_to_yahoo(r["symbol"])
        except ValueError as exc:
            raise SystemExit(f"cannot convert {r['symbol']!r}: {exc}") from None
        reason = check_symbol(sym)
        if reason is not None:
            raise SystemExit(f"{r['symbol']!r} -> {sym!r} is not acceptable: {reason}")
        if sym in seen:
            raise SystemExit(f"{r['symbol']!r} and {seen[sym]!r} both map to {sym!r}")
        seen[sym] = r["symbol"]
        entries.append(
            {
                "symbol": sym,
                "name": r.get("name", "").strip() or None,
                "sector": r.get("sector", "").strip() or None,
                "exchange": r.get("exchange", "").strip() or None,
            }
        )
    return entries


def render(entries: list[dict[str, str | None]]) -> str:
    """A JSON list, one object per line, deterministic byte for byte."""
    lines = [json.dumps(e, ensure_ascii=False) for e in entries]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True, type=Path, help="Nasdaq-screener export (CSV)")
    ap.add_argument("--count", type=int, default=5000, help="how many symbols (default 5000)")
    ap.add_argument("--out", type=Path, default=Path("symbols.json"), help="output JSON file")
    ap.add_argument("--check", action="store_true", help="only verify --out is up to date")
    args = ap.parse_args(argv)
    with args.csv.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    chosen = select_rows(rows, args.count)
    if len(chosen) < args.count:
        print(f"only {len(chosen)} rows in {args.csv}, wanted {args.count}", file=sys.stderr)
        return 1
    text = render(to_entries(chosen))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale; rerun without --check", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date ({args.count} symbols)")
        return 0
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.out)
    universe = load_symbols(args.out)  # the engine's own loader must accept what we wrote
    zero = sum(1 for r in chosen if _market_cap(r["market_cap"]) <= 0)
    print(f"wrote {args.out}: {len(universe)} symbols ({zero} without market cap)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
