"""The emulator's universe: tools/make_emulator_data.py mapping and the packaged stocks.csv."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from types import ModuleType

import pytest

from testkit import load_script
from yahoo_emulator.universe import default_data_path, load_universe

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    return load_script(ROOT / "tools" / "make_emulator_data.py", "make_emulator_data")


@pytest.mark.parametrize(
    ("nasdaq", "yahoo"),
    [
        ("AAPL", "AAPL"),
        ("BRK/B", "BRK-B"),
        ("BF/A", "BF-A"),
        ("ABR^D", "ABR-PD"),
        ("DCOM^", "DCOM-P"),
        ("RAC/WS", "RAC-WT"),
        ("RGTIW", "RGTIW"),
    ],
)
def test_symbol_notation(nasdaq: str, yahoo: str) -> None:
    assert _tool().yahoo_symbol(nasdaq) == yahoo


def test_exchange_codes_and_names() -> None:
    tool = _tool()
    assert tool.yahoo_exchange("NYSE", 0) == ("NYQ", "NYSE")
    assert tool.yahoo_exchange("AMEX", 0) == ("ASE", "NYSE American")
    assert tool.yahoo_exchange("NASDAQ", 4e12) == ("NMS", "NasdaqGS")
    assert tool.yahoo_exchange("NASDAQ", 5e8) == ("NGM", "NasdaqGM")
    assert tool.yahoo_exchange("NASDAQ", 1e6) == ("NCM", "NasdaqCM")
    assert tool.long_name("Apple Inc. Common Stock") == "Apple Inc."
    assert tool.long_name("Alibaba Group Holding Limited American Depositary Shares each") == (
        "Alibaba Group Holding Limited"
    )
    pref = "Arbor Realty Trust 6.375% Series D Cumulative Redeemable Preferred Stock"
    assert tool.long_name(pref) == pref
    assert tool.long_name("Osprey Acquisition Corp. III Warrants").endswith("Warrants")


def test_packaged_data_file() -> None:
    with default_data_path().open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7182
    syms = [r["symbol"] for r in rows]
    assert len(set(syms)) == len(syms)
    assert all(re.fullmatch(r"[A-Z]+(-(P?[A-Z]*|WT))?", s) for s in syms), [
        s for s in syms if not re.fullmatch(r"[A-Z]+(-(P?[A-Z]*|WT))?", s)
    ][:5]
    assert {r["exchange"] for r in rows} == {"NMS", "NGM", "NCM", "NYQ", "ASE"}
    assert all(float(r["last_sale"]) > 0 for r in rows)
    by = {r["symbol"]: r for r in rows}
    assert by["BRK-B"]["nasdaq_symbol"] == "BRK/B" and by["ABR-PD"]["nasdaq_symbol"] == "ABR^D"
    assert by["AAPL"]["name"] == "Apple Inc." and by["AAPL"]["sector"] == "Technology"


def test_universe_derived_columns_are_sane() -> None:
    u = load_universe()
    assert len(u) == 7182 and u.index["AAPL"] == u.symbols.index("AAPL")
    assert (u.low_52w <= u.last_sale).all() and (u.high_52w >= u.last_sale).all()
    assert (u.book_value > 0).all() and (u.daily_vol > 0).all()
    assert set(u.price_hint.tolist()) == {2, 4}
    assert (u.first_trade_s > 0).all()
