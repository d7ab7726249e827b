"""Flag values and fundamentals hashes (pure)."""

from __future__ import annotations

import json

import msgspec

from engine.earnings.cache import analysis_fields, flags_for
from engine.earnings.models import Fundamentals
from tests.unit.earnings.events import D1, D2, D3, FETCHED, ev


def test_flags_take_each_symbols_earliest_event() -> None:
    flags = flags_for([ev("A", D3), ev("A", D1), ev("B", D2, eps_estimate=0.5)])
    assert list(flags) == ["A", "B"]
    assert flags["A"].event_date == D1 and flags["B"].eps_estimate == 0.5
    decoded = json.loads(msgspec.json.encode(flags["B"]))
    assert decoded["event_date"] == "2026-11-27" and decoded["timing"] == "AMC"


def test_analysis_hash_leaves_out_missing_values() -> None:
    fields = analysis_fields(
        Fundamentals(symbol="A", fetched_at=FETCHED, eps_trailing=1.5, revenue=1e9)
    )
    assert fields["eps_trailing"] == "1.5" and fields["revenue"] == "1000000000.0"
    assert fields["fetched_at"] == "2026-11-25T16:00:00Z" and fields["available"] == "1"
    assert "eps_forward" not in fields and "gross_margin" not in fields
