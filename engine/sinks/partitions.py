"""Pure planning of the daily range partitions of the quote table (no I/O, clock passed in).

When TimescaleDB is not installed the quote table is a native ``PARTITION BY RANGE
(market_time)`` table with one partition per UTC day, named ``{table}_pYYYYMMDD`` and covering
``[day 00:00Z, day+1 00:00Z)``. The engine's maintenance (:mod:`engine.sinks.store`) lists the
partitions that exist, asks :func:`plan_partitions` what to do for ``today`` and executes the
returned DDL, each statement built here with every identifier quoted by :func:`quote_ident`.

Retention rule: with ``retention_days = N`` the partitions of the last N days *and today* are kept
(``today - N .. today``), so at least N whole days of quotes are always queryable; a partition is
dropped once every row in it is more than N days old. Rows whose day is older than that cutoff
are not stored at all (they would be dropped by the next maintenance anyway); see
:func:`retention_cutoff`.

Only partitions whose name matches the ``{table}_pYYYYMMDD`` pattern are ever dropped, so a
partition an operator attached by hand under another name is left alone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

UTC: Final = dt.UTC
_DAY_S: Final = 86_400
_IDENT_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


def quote_ident(name: str) -> str:
    """Quote an SQL identifier the way PostgreSQL's ``quote_ident`` does (always quoted).

    NUL cannot appear in an identifier, so it is refused rather than silently dropped.
    """
    if "\x00" in name:
        raise ValueError("identifier contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote an SQL string literal (standard_conforming_strings on, the default since 9.1)."""
    if "\x00" in value:
        raise ValueError("literal contains a NUL character")
    return "'" + value.replace("'", "''") + "'"


def check_table_name(table: str) -> str:
    """The table-name rule of ``PostgresSettings.table``, re-checked at the point of use.

    Structs built in code skip msgspec's decode-time validation, so the store checks again.
    """
    if not _IDENT_RE.match(table):
        raise ValueError(
            f"table name {table!r} must match {_IDENT_RE.pattern} "
            "(lower-case letters, digits, underscores; at most 41 characters)"
        )
    return table


def partition_name(table: str, day: dt.date) -> str:
    """``market_data`` + 2026-11-26 -> ``market_data_p20261126`` (at most 51 characters)."""
    return f"{table}_p{day:%Y%m%d}"


def parse_partition_day(table: str, name: str) -> dt.date | None:
    """The day of a partition named by :func:`partition_name`, else None (not ours)."""
    prefix = f"{table}_p"
    if not name.startswith(prefix):
        return None
    digits = name[len(prefix) :]
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def day_of(epoch_s: int | float) -> dt.date:
    """The UTC day of an epoch-seconds instant."""
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(epoch_s // _DAY_S))


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[day 00:00Z, next day 00:00Z)`` as aware datetimes."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + dt.timedelta(days=1)


def retention_cutoff(today: dt.date, retention_days: int) -> dt.date:
    """The oldest day that is kept: ``today - retention_days``."""
    return today - dt.timedelta(days=retention_days)


def storable_days(
    today: dt.date, *, retention_days: int, ahead_days: int
) -> tuple[dt.date, dt.date]:
    """Inclusive range of days a row may belong to and still be stored.

    Older rows are expired; rows further ahead than ``ahead_days + 1`` are bogus (validation
    already refuses more than a couple of minutes of clock skew).
    """
    return retention_cutoff(today, retention_days), today + dt.timedelta(days=ahead_days + 1)


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """What maintenance must do: partitions to create and to drop, oldest first."""

    create: tuple[dt.date, ...]
    drop: tuple[dt.date, ...]

    @property
    def empty(self) -> bool:
        return not self.create and not self.drop


def plan_partitions(
    today: dt.date,
    existing: Iterable[dt.date],
    *,
    retention_days: int,
    ahead_days: int,
) -> PartitionPlan:
    """Create ``today .. today + ahead_days`` where missing; drop days older than the cutoff.

    Past days inside the retention window that have no partition are *not* created here (an
    engine that was down for them has no rows for them); the writer creates a partition on
    demand when a late row needs one (:func:`storable_days`).
    """
    if retention_days < 1:
        raise ValueError(f"retention_days must be >= 1, got {retention_days}")
    if ahead_days < 0:
        raise ValueError(f"ahead_days must be >= 0, got {ahead_days}")
    have = set(existing)
    wanted = [today + dt.timedelta(days=i) for i in range(ahead_days + 1)]
    cutoff = retention_cutoff(today, retention_days)
    return PartitionPlan(
        create=tuple(d for d in wanted if d not in have),
        drop=tuple(sorted(d for d in have if d < cutoff)),
    )


def create_partition_sql(table: str, day: dt.date) -> str:
    """``CREATE TABLE IF NOT EXISTS <partition> PARTITION OF <table> FOR VALUES ...``."""
    start, end = day_bounds(day)
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_ident(partition_name(table, day))} "
        f"PARTITION OF {quote_ident(table)} "
        f"FOR VALUES FROM ({quote_literal(start.isoformat())}) "
        f"TO ({quote_literal(end.isoformat())})"
    )


def drop_partition_sql(table: str, day: dt.date) -> str:
    """``DROP TABLE IF EXISTS <partition>`` (the partition's rows go with it)."""
    return f"DROP TABLE IF EXISTS {quote_ident(partition_name(table, day))}"
