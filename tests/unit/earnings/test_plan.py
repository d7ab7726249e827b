"""Upsert planning (pure): insert, update, unchanged, move, time change; merging."""

from __future__ import annotations

import datetime as dt

from engine.earnings.plan import merge, plan_upsert
from tests.unit.earnings.events import D1, D2, D3, ev


def test_plan_insert_update_unchanged() -> None:
    stored = [ev("A", D1, eps_estimate=1.0), ev("B", D1, eps_estimate=2.0)]
    fetched = [ev("A", D1, eps_estimate=1.0), ev("B", D1, eps_estimate=2.5), ev("C", D2)]
    plan = plan_upsert(stored, fetched)
    assert plan.unchanged == 1
    assert [e.symbol for e in plan.updates] == ["B"]
    assert [e.symbol for e in plan.inserts] == ["C"]
    assert not plan.moves and not plan.time_changes


def test_missing_values_never_erase_known_ones() -> None:
    old = ev("A", D1, eps_estimate=1.0, eps_reported=1.2, surprise_pct=20.0, company_name="A Co")
    new = ev("A", D1, source="yahoo_quotesummary")
    merged = merge(old, new)
    assert (merged.eps_reported, merged.surprise_pct, merged.company_name) == (1.2, 20.0, "A Co")
    assert merged.source == "yahoo_quotesummary"
    same = ev("A", D1, eps_estimate=1.0, eps_reported=1.2, surprise_pct=20.0, company_name="A Co")
    assert plan_upsert([old], [same]).unchanged == 1


def test_reschedule_moves_the_row() -> None:
    stored = [ev("A", D1), ev("B", D1)]
    plan = plan_upsert(stored, [ev("A", D3), ev("B", D1)])
    (move,) = plan.moves
    assert (move.old.event_date, move.new.event_date) == (D1, D3)
    assert plan.unchanged == 1 and not plan.inserts


def test_no_move_when_the_old_row_is_reported_far_or_another_event() -> None:
    far = D1 + dt.timedelta(days=60)
    assert not plan_upsert([ev("A", D1, eps_reported=1.0)], [ev("A", D3)]).moves
    assert not plan_upsert([ev("A", D1)], [ev("A", far)]).moves
    other = ev("A", D3, event_name="Q4 2026 Earnings Release")
    assert not plan_upsert([ev("A", D1)], [other]).moves
    # both dates confirmed by this fetch: two events, no move
    both = plan_upsert([ev("A", D1)], [ev("A", D1), ev("A", D3)])
    assert not both.moves and [e.event_date for e in both.inserts] == [D3]


def test_time_change_on_the_same_date_is_an_update_and_recorded() -> None:
    plan = plan_upsert([ev("A", D1, hour=21)], [ev("A", D1, hour=12, timing="BMO")])
    assert [e.timing for e in plan.updates] == ["BMO"]
    (change,) = plan.time_changes
    assert change.old.event_time.hour == 21 and change.new.event_time.hour == 12
