"""Quotes as table rows: column order, values PostgreSQL would refuse, data errors."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from engine.sinks.store.rows import COLUMNS, RowEncoder, is_data_error, quote_row
from tests.unit.sinks.store.quotes import NOW, make_quote


def test_row_follows_the_columns() -> None:
    q = make_quote()
    row = quote_row(q)
    assert row is not None and len(row) == len(COLUMNS)
    values = dict(zip(COLUMNS, row, strict=True))
    assert values["market_time"] == dt.datetime.fromtimestamp(NOW, dt.UTC)
    assert values["ingest_time"] == dt.datetime.fromtimestamp(NOW, dt.UTC)
    assert (values["symbol"], values["price"], values["volume"]) == ("AAA", 100.0, 1000)
    assert values["correlation_id"] == q.correlation_id


@pytest.mark.parametrize(
    "change",
    [
        {"symbol": "A\x00B"},
        {"symbol": ""},
        {"currency": "\ud800"},
        {"price": float("nan")},
        {"price": float("inf")},
        {"volume": 1 << 63},
    ],
)
def test_unstorable_values_give_no_row(change: dict[str, object]) -> None:
    assert quote_row(make_quote(**change)) is None


def test_non_finite_change_and_odd_correlation_id_become_null() -> None:
    row = quote_row(make_quote(change_percent=float("nan"), correlation_id="not-a-uuid"))
    assert row is not None
    values = dict(zip(COLUMNS, row, strict=True))
    assert values["change_percent"] is None and values["correlation_id"] is None


def test_encoder_shares_datetimes_of_a_cycle() -> None:
    enc = RowEncoder()
    a, b = enc.row(make_quote("A")), enc.row(make_quote("B"))
    assert a is not None and b is not None and a[0] is b[0]


def test_data_errors_are_the_rows_fault() -> None:
    assert is_data_error(asyncpg.DataError("bad"))
    assert is_data_error(ValueError("bad uuid"))
    assert not is_data_error(ConnectionResetError())
    assert not is_data_error(asyncpg.UndefinedTableError("gone"))
