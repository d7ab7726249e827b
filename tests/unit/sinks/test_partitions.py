"""Pure partition planning (engine.sinks.partitions): names, bounds, retention, the plan for a
day."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.sinks import partitions as p

D = dt.date(2026, 11, 26)


def days(start: dt.date, n: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


class TestNames:
    def test_partition_name_round_trips(self) -> None:
        """A partition's name encodes its day and parses back."""
        name = p.partition_name("market_data", D)
        assert name == "market_data_p20261126"
        assert p.parse_partition_day("market_data", name) == D

    @pytest.mark.parametrize(
        "name",
        [
            "market_data_p2026112",  # too short
            "market_data_p2026112x",
            "market_data_p20261332",  # not a date
            "other_p20261126",
            "market_data_x_p20261126",  # another table's partition
            "market_data_p20261126_old",
        ],
    )
    def test_foreign_names_are_not_ours(self, name: str) -> None:
        """Names not made by partition_name() are never parsed (so never dropped)."""
        assert p.parse_partition_day("market_data", name) is None

    def test_quote_ident_escapes_quotes(self) -> None:
        """Identifiers are always double-quoted, embedded quotes doubled, NUL refused."""
        assert p.quote_ident("market_data") == '"market_data"'
        assert p.quote_ident('a"; DROP TABLE x; --') == '"a""; DROP TABLE x; --"'
        with pytest.raises(ValueError):
            p.quote_ident("a\x00b")

    def test_quote_literal_escapes_quotes(self) -> None:
        """String literals double embedded single quotes."""
        assert p.quote_literal("it's") == "'it''s'"

    @pytest.mark.parametrize("bad", ["Market", "1abc", "a-b", 'a"b', "a;b", "", "x" * 42, "é"])
    def test_table_name_rule(self, bad: str) -> None:
        """Table names must be lower-case identifiers of at most 41 characters."""
        with pytest.raises(ValueError):
            p.check_table_name(bad)
        assert p.check_table_name("market_data_2") == "market_data_2"


class TestDays:
    def test_day_of_and_bounds(self) -> None:
        """Days are UTC; bounds are [00:00Z, next 00:00Z)."""
        start, end = p.day_bounds(D)
        assert start == dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
        assert end - start == dt.timedelta(days=1)
        assert p.day_of(start.timestamp()) == D
        assert p.day_of(end.timestamp() - 1) == D
        assert p.day_of(end.timestamp()) == D + dt.timedelta(days=1)

    def test_storable_days(self) -> None:
        """Rows from today-retention up to today+ahead+1 may be stored."""
        assert p.storable_days(D, retention_days=7, ahead_days=3) == (
            dt.date(2026, 11, 19),
            dt.date(2026, 11, 30),
        )


class TestPlan:
    def test_fresh_table_creates_today_and_ahead(self) -> None:
        """With no partitions: today and the next ahead_days are created, nothing dropped."""
        plan = p.plan_partitions(D, [], retention_days=7, ahead_days=3)
        assert plan.create == tuple(days(D, 4))
        assert plan.drop == ()

    def test_steady_state_is_a_no_op(self) -> None:
        """A table maintained yesterday needs one new day ahead and one dropped behind."""
        existing = days(D - dt.timedelta(days=8), 12)  # 11-18 .. 11-29
        plan = p.plan_partitions(D, existing, retention_days=7, ahead_days=3)
        assert plan.create == ()
        assert plan.drop == (dt.date(2026, 11, 18),)
        again = p.plan_partitions(D, set(existing) - set(plan.drop), retention_days=7, ahead_days=3)
        assert again.empty

    def test_retention_keeps_seven_full_days(self) -> None:
        """The partition of today-7 is kept (part of it is < 7 days old); today-8 is dropped."""
        existing = days(D - dt.timedelta(days=10), 11)
        plan = p.plan_partitions(D, existing, retention_days=7, ahead_days=0)
        assert plan.drop == tuple(days(D - dt.timedelta(days=10), 3))
        kept = sorted(set(existing) - set(plan.drop))
        assert kept[0] == D - dt.timedelta(days=7)

    def test_after_a_long_stop_everything_old_goes(self) -> None:
        """An engine stopped for a month drops every expired day and creates the new ones."""
        old = days(D - dt.timedelta(days=40), 5)
        plan = p.plan_partitions(D, old, retention_days=7, ahead_days=2)
        assert plan.drop == tuple(old)
        assert plan.create == tuple(days(D, 3))

    def test_simulated_clock_over_two_weeks(self) -> None:
        """Applying the plan day after day keeps exactly retention+1+ahead partitions."""
        have: set[dt.date] = set()
        for i in range(15):
            today = D + dt.timedelta(days=i)
            plan = p.plan_partitions(today, have, retention_days=7, ahead_days=3)
            have = (have | set(plan.create)) - set(plan.drop)
            assert max(have) == today + dt.timedelta(days=3)
            assert min(have) >= today - dt.timedelta(days=7)
        assert len(have) == 8 + 3  # today-7 .. today+3 (the engine started on day 0)

    def test_past_gaps_are_not_back_filled(self) -> None:
        """Missing past days are created on demand by the writer, not by the plan."""
        plan = p.plan_partitions(D, [D - dt.timedelta(days=3)], retention_days=7, ahead_days=0)
        assert plan.create == (D,)

    def test_invalid_arguments(self) -> None:
        """retention_days >= 1 and ahead_days >= 0."""
        with pytest.raises(ValueError):
            p.plan_partitions(D, [], retention_days=0, ahead_days=1)
        with pytest.raises(ValueError):
            p.plan_partitions(D, [], retention_days=7, ahead_days=-1)


class TestDdl:
    def test_create_sql(self) -> None:
        """The CREATE statement is idempotent, quoted and bounded on UTC midnights."""
        sql = p.create_partition_sql("market_data", D)
        assert sql == (
            'CREATE TABLE IF NOT EXISTS "market_data_p20261126" PARTITION OF "market_data" '
            "FOR VALUES FROM ('2026-11-26T00:00:00+00:00') TO ('2026-11-27T00:00:00+00:00')"
        )

    def test_drop_sql(self) -> None:
        """The DROP statement is idempotent and quoted."""
        assert p.drop_partition_sql("market_data", D) == (
            'DROP TABLE IF EXISTS "market_data_p20261126"'
        )
