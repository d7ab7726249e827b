"""Readers of Yahoo's values: numbers in their several shapes, instants, timing codes, dates.

* Numbers may arrive as JSON numbers, numeric strings or ``{raw, fmt}`` objects; ``{}``,
  ``null``, ``"NaN"`` and ``"-"`` are missing (:func:`number`); anything else that is not a
  number raises :class:`BadValue`, which the calendar turns into a nulled field or a rejected
  row and the fundamentals into a missing value (:func:`lenient`).
* Instants are ISO-8601 strings or epoch seconds/milliseconds (:func:`parse_instant`).
* Timing codes: ``BMO`` (before market open), ``AMC`` (after market close), ``DMH`` (during
  market hours), ``TMC`` (time not confirmed). ``TNS``/empty/missing mean "not supplied" and
  become ``TMC``; ``TAS`` ("time as specified") is derived from the New York time of the start
  instant; any other code becomes ``TMC`` with a warning (:func:`normalize_timing`).
* The event date is the New York date of the start instant, except that an unconfirmed
  (``TMC``) start at exactly 00:00 UTC is read as a bare date (:func:`event_day`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo

from engine.earnings.models import Timing

NY: Final = ZoneInfo("America/New_York")
_KNOWN_TIMING: Final[frozenset[str]] = frozenset({"BMO", "AMC", "DMH", "TMC"})
_NOT_SUPPLIED: Final = frozenset({"", "TNS", "TBD", "N/A"})
_MISSING_TEXT: Final = frozenset({"", "-", "--", "nan", "null", "none", "n/a", "infinity"})
_OPEN: Final = dt.time(9, 30)
_CLOSE: Final = dt.time(16, 0)


class BadValue(ValueError):
    """A value that is present but not what the field needs."""


def number(value: Any) -> float | None:
    """A finite number from Yahoo's shapes: JSON number, numeric string, ``{raw, fmt}``.

    ``None``, ``{}``, ``{"raw": null}``, ``"NaN"``, ``"-"`` and non-finite values are missing
    (``None``); anything else that is not a number raises :class:`BadValue`.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadValue(f"boolean {value!r} is not a number")
    if isinstance(value, int | float):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, Mapping):
        return number(value.get("raw")) if value else None
    if isinstance(value, str):
        text = value.strip().replace(",", "").rstrip("%")
        if text.lower() in _MISSING_TEXT:
            return None
        try:
            v = float(text)
        except ValueError:
            raise BadValue(f"{value[:40]!r} is not a number") from None
        return v if math.isfinite(v) else None
    raise BadValue(f"{type(value).__name__} is not a number")


def lenient(value: Any) -> float | None:
    """:func:`number`, with anything unreadable as missing (fundamentals: best effort)."""
    try:
        return number(value)
    except BadValue:
        return None


def text(value: Any) -> str | None:
    """A stripped, non-empty string of ``value``, else None."""
    if value is None:
        return None
    out = str(value).strip()
    return out or None


def parse_instant(value: Any) -> dt.datetime:
    """ISO-8601 (``Z`` or offset; naive = UTC) or epoch seconds/milliseconds -> aware UTC."""
    if isinstance(value, Mapping):
        value = value.get("raw")
    if isinstance(value, bool) or value is None:
        raise BadValue(f"{value!r} is not a date")
    if isinstance(value, int | float):
        secs = float(value) / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            return dt.datetime.fromtimestamp(secs, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise BadValue(f"{value!r} is not a valid epoch") from None
    if not isinstance(value, str):
        raise BadValue(f"{type(value).__name__} is not a date")
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadValue(f"{value[:40]!r} is not an ISO-8601 date") from None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def timing_from_clock(t: dt.datetime) -> Timing:
    """BMO / DMH / AMC from the New York time of day of an instant."""
    local = t.astimezone(NY).time()
    if local < _OPEN:
        return "BMO"
    return "AMC" if local >= _CLOSE else "DMH"


def normalize_timing(raw: Any, start: dt.datetime) -> tuple[Timing, str | None]:
    """(timing, warning) for a ``startdatetimetype`` value."""
    if raw is None:
        return "TMC", None
    if not isinstance(raw, str):
        return "TMC", f"timing {raw!r} is not a string"
    code = raw.strip().upper()
    if code in _KNOWN_TIMING:
        return code, None  # type: ignore[return-value]
    if code in _NOT_SUPPLIED:
        return "TMC", None
    if code == "TAS":
        return timing_from_clock(start), None
    return "TMC", f"unknown timing code {raw[:20]!r}"


def event_day(start: dt.datetime, timing: Timing) -> dt.date:
    """The New York date of the start; an unconfirmed time at exactly 00:00 UTC is a bare
    date (its New York date would be the evening before)."""
    if timing == "TMC" and start.astimezone(dt.UTC).time() == dt.time(0, 0):
        return start.astimezone(dt.UTC).date()
    return start.astimezone(NY).date()
