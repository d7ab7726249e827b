"""The store's pure pieces: SQL for a table, statement rows of a plan, row <-> event."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.earnings.migration import table_names
from engine.earnings.plan import COLUMNS, plan_upsert
from engine.earnings.store import (
    announcement_sql,
    plan_rows,
    row_event,
    row_values,
    statements,
    unzip_keys,
)
from tests.unit.earnings.events import D1, D2, D3, FETCHED, ev


def test_statements_quote_the_table_names() -> None:
    sql = statements(table_names("earn_x"))
    assert '"earn_x"' in sql["select"] and '"earn_x_changes"' in sql["change"]
    assert '"earn_x_syncs"' in sql["covered"] and '"earn_x_syncs"' in sql["record_run"]
    n = len(COLUMNS)
    assert f"${n + 1}" in sql["insert"] and f"${n + 2}" not in sql["insert"]
    assert "announced_at = NULL" in sql["move"]


def test_bad_table_name_is_refused() -> None:
    with pytest.raises(ValueError, match="table name"):
        table_names("drop table; --")


def test_announcement_sql_names_the_column() -> None:
    select, mark = announcement_sql(table_names("earn_x"), "reported_announced_at")
    assert "t.reported_announced_at IS NULL" in select
    assert "SET reported_announced_at = $3" in mark


def test_plan_rows_follow_the_plan() -> None:
    stored = [ev("A", D1), ev("B", D1, hour=21)]
    fetched = [ev("A", D3), ev("B", D1, hour=12, timing="BMO"), ev("C", D2)]
    rows = plan_rows(plan_upsert(stored, fetched), FETCHED)
    assert [r[0] for r in rows["insert"]] == ["C"]
    assert rows["insert"][0][-1] == FETCHED and len(rows["insert"][0]) == len(COLUMNS) + 1
    ((sym, old_date, new_date, *_),) = rows["move"]
    assert (sym, old_date, new_date) == ("A", D1, D3)
    assert [r[0] for r in rows["update"]] == ["B"]
    assert sorted((r[0], r[5]) for r in rows["change"]) == [
        ("A", "rescheduled"),
        ("B", "time_changed"),
    ]


def test_plan_rows_of_an_empty_plan_are_empty() -> None:
    rows = plan_rows(plan_upsert([], []), FETCHED)
    assert all(not v for v in rows.values())


def test_row_event_reads_back_row_values() -> None:
    e = ev("A", D1, eps_estimate=1.5, company_name="A Co", market_cap=10)
    record = dict(zip(COLUMNS, row_values(e), strict=True))
    record["event_time"] = e.event_time.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert row_event(record) == e


def test_unzip_keys_sorts_and_deduplicates() -> None:
    assert unzip_keys([("B", D2), ("A", D1), ("B", D2)]) == (["A", "B"], [D1, D2])
