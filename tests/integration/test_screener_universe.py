"""Issue 16, done when: the 5,000 largest listings, in the Nasdaq screener's own notation, go
through one clean cycle against the emulator and every one of them is published (BRK-A at
~$740,000 and the SVREW warrant at ~$0.0098 included), while corrupted prices are still
dead-lettered.

The screener CSV is built from the repository's copy of the screener data
(``yahoo_emulator/data/stocks.csv``: each row's ``nasdaq_symbol`` as the screener writes it and
``symbol`` as Yahoo does), never from ``../shared``. The emulator, like Yahoo, answers only the
Yahoo form (``BRK-B``, not ``BRK/B``): a symbol the engine did not translate would be missing.
"""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from testkit import EmulatorProcess, stream_messages
from tests.conftest import NATS_URL, ROOT, run_cli
from tests.integration.test_engine_cycle import _env, summary

pytestmark = [pytest.mark.integration]

STOCKS_CSV = ROOT / "yahoo_emulator" / "data" / "stocks.csv"
SCREENER_COLUMNS = ("symbol", "name", "last_sale", "market_cap", "country", "sector", "industry")
N_LARGEST = 5000


def largest_listings(n: int) -> list[dict[str, str]]:
    """The ``n`` largest rows by market cap (ties by symbol), as the screener export ranks them."""
    with STOCKS_CSV.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return sorted(rows, key=lambda r: (-int(r["market_cap"] or 0), r["symbol"]))[:n]


def write_screener_csv(path: Path, rows: list[dict[str, str]]) -> dict[str, str]:
    """A CSV in the screener's shape and notation; returns screener symbol -> Yahoo symbol."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(SCREENER_COLUMNS)
        for r in rows:
            w.writerow([r["nasdaq_symbol"], *(r[c] for c in SCREENER_COLUMNS[1:])])
    return {r["nasdaq_symbol"]: r["symbol"] for r in rows}


def engine_env(url: str, names: dict[str, str], tmp_path: Path, symbols: Path) -> dict[str, str]:
    """The engine cycle tests' environment (an empty config: every default, so ``skip`` and
    translation on) over ``symbols``."""
    return _env(url, names, tmp_path, INGEST_SYMBOLS__FILE=str(symbols))


def events(stderr: str, name: str) -> list[dict[str, object]]:
    out = []
    for line in stderr.splitlines():
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("event") == name:
            out.append(doc)
    return out


@pytest.mark.timeout(90)
def test_the_5000_largest_in_screener_notation_all_publish(
    nats_names: dict[str, str], tmp_path: Path
) -> None:
    """One clean `run --once` over the screener CSV: 5,000 requested, 5,000 published, in
    Yahoo notation; BRK/B and BRK/A were translated (one INFO line), BRK-A and SVREW publish."""
    rows = largest_listings(N_LARGEST)
    to_yahoo = write_screener_csv(tmp_path / "screener.csv", rows)
    screener_forms = {s for s, y in to_yahoo.items() if s != y}
    assert {"BRK/A", "BRK/B"} <= screener_forms  # the file really is in screener notation
    args = ["--market-state", "REGULAR", "--seed", "16", "--delisted", ""]
    with EmulatorProcess(args) as emu:
        env = engine_env(emu.url, nats_names, tmp_path, tmp_path / "screener.csv")
        r = run_cli(["run", "--once"], env, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    s = summary(r.stdout)
    assert s["requested"] == N_LARGEST
    assert (s["valid"], s["rejected"], s["missing"], s["failed"]) == (N_LARGEST, 0, 0, 0)
    assert s["published"] == N_LARGEST

    stream = nats_names["INGEST_NATS__STREAM"]
    published = {p["symbol"]: p for p, _ in stream_messages(NATS_URL, stream)}
    assert set(published) == set(to_yahoo.values())
    assert published["BRK-A"]["price"] > 100_000  # the seed's max_price was 100,000
    assert published["SVREW"]["price"] < 0.01  # and its min_price 0.01
    assert "BRK-B" in published and "BRK/B" not in published
    assert stream_messages(NATS_URL, nats_names["INGEST_NATS__DLQ_STREAM"]) == []

    (translated,) = events(r.stderr, "symbols_translated")
    assert translated["level"] == "info" and translated["count"] == len(screener_forms)
    assert "BRK/B -> BRK-B" in str(translated["examples"])
    assert events(r.stderr, "symbols_skipped") == []


@pytest.mark.timeout(90)
def test_corrupted_prices_are_still_rejected(nats_names: dict[str, str], tmp_path: Path) -> None:
    """A screener universe whose quotes for a few symbols are corrupted: ~1e9 for a ~$50 stock,
    0, 1e308, NaN, a string. Those are dead-lettered with their reason; BRK-A, SVREW and every
    other symbol publish; a line with no Yahoo form is skipped (one warning), not fatal."""
    every = largest_listings(len(STOCKS_CSV.read_text().splitlines()))
    rows = every[:300] + [r for r in every if r["symbol"] in ("SVREW", "ABR-PD", "DCOM-P")]
    to_yahoo = write_screener_csv(tmp_path / "screener.csv", rows)
    with (tmp_path / "screener.csv").open("a", encoding="utf-8") as fh:
        fh.write("XYZ/RT,Rights with no Yahoo form,,,,,\n")
    by_price = sorted((float(r["last_sale"]), r["symbol"]) for r in rows[:300])
    fifty = min(by_price, key=lambda ps: abs(ps[0] - 50))[1]  # a ~$50 stock
    o = [y for _, y in by_price if y not in (fifty, "BRK-A", "BRK-B")][:4]
    kinds = {fifty: "huge_price", o[0]: "zero_price", o[1]: "max_price", o[2]: "nan_price",
             o[3]: "string_price"}  # fmt: skip
    expected = {fifty: "price_out_of_range", o[0]: "price_out_of_range",
                o[1]: "price_out_of_range", o[2]: "malformed", o[3]: "malformed"}  # fmt: skip
    args = ["--market-state", "REGULAR", "--seed", "16", "--delisted", "",
            "--poison-symbols", ",".join(f"{s}={k}" for s, k in kinds.items())]  # fmt: skip
    with EmulatorProcess(args) as emu:
        env = engine_env(emu.url, nats_names, tmp_path, tmp_path / "screener.csv")
        r = run_cli(["run", "--once"], env, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    letters = {
        p["symbol"]: p for p, _ in stream_messages(NATS_URL, nats_names["INGEST_NATS__DLQ_STREAM"])
    }
    published = {
        p["symbol"] for p, _ in stream_messages(NATS_URL, nats_names["INGEST_NATS__STREAM"])
    }
    assert {s: p["reason"] for s, p in letters.items()} == expected
    assert str(letters[fifty]["detail"]).startswith("price=987654321.5 is ")
    assert {"BRK-A", "BRK-B", "SVREW", "ABR-PD", "DCOM-P"} <= published
    assert published == set(to_yahoo.values()) - set(expected)
    (skipped,) = events(r.stderr, "symbols_skipped")
    assert skipped["count"] == 1 and "XYZ/RT" in str(skipped["examples"])
