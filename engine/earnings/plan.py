"""Upsert planning (pure): what to write for a fetched calendar, given the stored rows.

:func:`plan_upsert` decides per fetched event:

* *unchanged* - nothing written, so a repeated sync changes nothing, ``last_updated`` included;
* *update* - a value changed; missing values never erase known ones (:func:`merge`), so a
  reported EPS or a name survives a poorer source; a changed start time is also recorded as a
  time change;
* *move* - no row at this date, but the same symbol has an unreported row within
  ``match_days`` (45; a quarter is ~91) that this fetch did not confirm and whose event name
  does not contradict: the report was rescheduled, the row moves to the new date;
* *insert* - otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from engine.earnings.models import EarningsEvent

MATCH_DAYS: Final = 45
COLUMNS: Final = (
    "symbol", "event_date", "event_time", "timing", "company_name", "event_name", "market_cap",
    "eps_estimate", "eps_reported", "surprise_pct", "source",
)  # fmt: skip
"""The stored fields of an event, the key (symbol, event_date) first."""
DATA_FIELDS: Final = COLUMNS[2:]
Key = tuple[str, dt.date]


class Move(msgspec.Struct, frozen=True):
    old: EarningsEvent
    new: EarningsEvent


class UpsertPlan(msgspec.Struct):
    inserts: list[EarningsEvent] = msgspec.field(default_factory=list)
    updates: list[EarningsEvent] = msgspec.field(default_factory=list)
    moves: list[Move] = msgspec.field(default_factory=list)
    time_changes: list[Move] = msgspec.field(default_factory=list)
    unchanged: int = 0


def merge(old: EarningsEvent, new: EarningsEvent) -> EarningsEvent:
    """``new`` with its missing values taken from ``old`` (a poorer source erases nothing)."""
    changes = {
        f: getattr(old, f)
        for f in ("company_name", "event_name", "market_cap", "eps_estimate", "eps_reported")
        if getattr(new, f) is None and getattr(old, f) is not None
    }
    if new.eps_reported is None and old.eps_reported is not None:
        changes["surprise_pct"] = old.surprise_pct
    return msgspec.structs.replace(new, **changes) if changes else new


def _same(a: EarningsEvent, b: EarningsEvent) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in DATA_FIELDS)


def _move_candidate(
    e: EarningsEvent,
    rows: Sequence[EarningsEvent],
    fetched: set[Key],
    claimed: set[Key],
    match_days: int,
) -> EarningsEvent | None:
    best: EarningsEvent | None = None
    for r in rows:
        gap = abs((r.event_date - e.event_date).days)
        if (
            r.key in fetched
            or r.key in claimed
            or r.eps_reported is not None
            or gap > match_days
            or (r.event_name and e.event_name and r.event_name != e.event_name)
        ):
            continue
        if best is None or gap < abs((best.event_date - e.event_date).days):
            best = r
    return best


def plan_upsert(
    existing: Iterable[EarningsEvent],
    fetched: Sequence[EarningsEvent],
    *,
    match_days: int = MATCH_DAYS,
) -> UpsertPlan:
    """What to write for ``fetched`` given the stored rows (see the module docstring)."""
    by_key = {r.key: r for r in existing}
    by_symbol: dict[str, list[EarningsEvent]] = {}
    for r in by_key.values():
        by_symbol.setdefault(r.symbol, []).append(r)
    fetched_keys = {e.key for e in fetched}
    claimed: set[Key] = set()
    plan = UpsertPlan()
    for e in sorted(fetched, key=lambda x: x.key):
        cur = by_key.get(e.key)
        if cur is not None:
            new = merge(cur, e)
            if _same(cur, new):
                plan.unchanged += 1
                continue
            plan.updates.append(new)
            if new.event_time != cur.event_time:
                plan.time_changes.append(Move(cur, new))
            continue
        old = _move_candidate(e, by_symbol.get(e.symbol, ()), fetched_keys, claimed, match_days)
        if old is None:
            plan.inserts.append(e)
            continue
        claimed.add(old.key)
        plan.moves.append(Move(old, merge(old, e)))
    return plan
