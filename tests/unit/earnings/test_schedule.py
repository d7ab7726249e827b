"""The 09:30 New York schedule on NYSE trading days: DST, holidays, start-up catch-up (pure)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from engine.config import EarningsSettings, load_config
from engine.earnings.schedule import (
    ExchangeCalendar,
    WeekdayCalendar,
    due_slot,
    next_sync,
    previous_trading_day,
    retry_delay,
    slots_on,
)
from engine.errors import ConfigError

NY = ZoneInfo("America/New_York")
XNYS = ExchangeCalendar("XNYS")
AT_0930 = (dt.time(9, 30),)


def ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=NY)


def utc(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=dt.UTC)


def test_exchange_calendar_knows_nyse_holidays() -> None:
    assert not XNYS.is_trading_day(dt.date(2026, 11, 26))  # Thanksgiving
    assert XNYS.is_trading_day(dt.date(2026, 11, 27))  # half day, still a session
    assert not XNYS.is_trading_day(dt.date(2026, 4, 3))  # Good Friday
    assert not XNYS.is_trading_day(dt.date(2026, 12, 25))
    assert not XNYS.is_trading_day(dt.date(2027, 1, 1))
    assert not XNYS.is_trading_day(dt.date(2026, 11, 28))  # Saturday
    assert XNYS.is_trading_day(dt.date(2026, 11, 25))


def test_slot_instant_follows_dst() -> None:
    (winter,) = slots_on(dt.date(2026, 3, 6), AT_0930)
    (summer,) = slots_on(dt.date(2026, 3, 9), AT_0930)
    assert winter == utc(2026, 3, 6, 14, 30)
    assert summer == utc(2026, 3, 9, 13, 30)


def test_across_the_spring_dst_change() -> None:
    # Friday 6 March 2026 (EST) synced; next is Monday 9 March 09:30 EDT = 13:30Z
    covered = ny(2026, 3, 6, 9, 30)
    got = next_sync(ny(2026, 3, 6, 10, 0), covered, XNYS, AT_0930)
    assert got == utc(2026, 3, 9, 13, 30)
    # over the weekend itself (Sunday 02:00 the clocks jump)
    assert next_sync(ny(2026, 3, 8, 12, 0), covered, XNYS, AT_0930) == utc(2026, 3, 9, 13, 30)


def test_across_the_autumn_dst_change() -> None:
    covered = ny(2026, 10, 30, 9, 30)  # Friday, EDT
    got = next_sync(ny(2026, 10, 30, 16, 0), covered, XNYS, AT_0930)
    assert got == utc(2026, 11, 2, 14, 30)  # Monday 09:30 EST


def test_thanksgiving_is_skipped() -> None:
    covered = ny(2026, 11, 25, 9, 30)
    got = next_sync(ny(2026, 11, 25, 12, 0), covered, XNYS, AT_0930)
    assert got == ny(2026, 11, 27, 9, 30) == utc(2026, 11, 27, 14, 30)
    # started on the holiday itself: nothing due today, Friday next
    assert next_sync(ny(2026, 11, 26, 11, 0), None, XNYS, AT_0930) == ny(2026, 11, 27, 9, 30)


def test_good_friday_and_weekend_are_skipped() -> None:
    covered = ny(2026, 4, 2, 9, 30)
    assert next_sync(ny(2026, 4, 2, 9, 31), covered, XNYS, AT_0930) == ny(2026, 4, 6, 9, 30)


def test_startup_after_the_slot_runs_todays_sync_at_once() -> None:
    now = ny(2026, 11, 24, 11, 0)
    assert next_sync(now, None, XNYS, AT_0930) == ny(2026, 11, 24, 9, 30)  # in the past: now
    # a run covering an earlier day does not count for today
    assert next_sync(now, ny(2026, 11, 23, 9, 30), XNYS, AT_0930) == ny(2026, 11, 24, 9, 30)
    # once covered, tomorrow
    assert next_sync(now, ny(2026, 11, 24, 9, 30), XNYS, AT_0930) == ny(2026, 11, 25, 9, 30)


def test_startup_before_the_slot_waits_for_it() -> None:
    assert next_sync(ny(2026, 11, 24, 8, 0), None, XNYS, AT_0930) == ny(2026, 11, 24, 9, 30)
    assert due_slot(ny(2026, 11, 24, 9, 29), None, XNYS, AT_0930) is None
    assert due_slot(ny(2026, 11, 24, 9, 30), None, XNYS, AT_0930) == ny(2026, 11, 24, 9, 30)


def test_a_manual_run_after_the_slot_covers_it() -> None:
    manual = ny(2026, 11, 24, 10, 15)
    assert next_sync(ny(2026, 11, 24, 11, 0), manual, XNYS, AT_0930) == ny(2026, 11, 25, 9, 30)
    early = ny(2026, 11, 24, 8, 0)  # a manual run before 09:30 does not
    assert next_sync(ny(2026, 11, 24, 11, 0), early, XNYS, AT_0930) == ny(2026, 11, 24, 9, 30)


def test_several_sync_times() -> None:
    times = (dt.time(9, 30), dt.time(17, 30))
    now = ny(2026, 11, 24, 18, 0)
    assert next_sync(now, ny(2026, 11, 24, 9, 30), XNYS, times) == ny(2026, 11, 24, 17, 30)
    # nothing run today: only the latest passed slot is due, once
    assert next_sync(now, None, XNYS, times) == ny(2026, 11, 24, 17, 30)
    assert next_sync(now, ny(2026, 11, 24, 17, 30), XNYS, times) == ny(2026, 11, 25, 9, 30)


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_sync(dt.datetime(2026, 11, 24, 11, 0), None, XNYS, AT_0930)


def test_previous_trading_day() -> None:
    assert previous_trading_day(dt.date(2026, 11, 30), XNYS) == dt.date(2026, 11, 27)  # Monday
    assert previous_trading_day(dt.date(2026, 11, 27), XNYS) == dt.date(2026, 11, 25)  # holiday
    assert previous_trading_day(dt.date(2026, 11, 27), XNYS, 0) == dt.date(2026, 11, 27)
    assert previous_trading_day(dt.date(2026, 11, 30), WeekdayCalendar(), 2) == dt.date(
        2026, 11, 26
    )


def test_retry_delay_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n, 30, 900) for n in range(7)] == [0, 30, 60, 120, 240, 480, 900]


def test_settings_validation() -> None:
    s = EarningsSettings(sync_times=("17:30", "09:30", "09:30"))
    assert s.times() == (dt.time(9, 30), dt.time(17, 30))
    bad: dict[str, Any]
    for bad in ({"sync_times": ["9:30"]}, {"sync_times": []}, {"page_size": 101},
                {"flag_key_prefix": "x:", "analysis_key_prefix": "x:"},
                {"retry_base_s": 100, "retry_max_s": 10}, {"nope": 1}):  # fmt: skip
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, EarningsSettings)


def test_settings_come_from_config_file_and_env(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[earnings]\nwindow_days = 3\nsync_times = ["09:30", "17:30"]\n')
    cfg = load_config(path, environ={"INGEST_EARNINGS__ENABLED": "false"})
    assert cfg.earnings.window_days == 3
    assert cfg.earnings.enabled is False
    assert cfg.earnings.times() == (dt.time(9, 30), dt.time(17, 30))
    env = {"INGEST_EARNINGS__SYNC_TIMES": "08:00,16:45"}
    assert load_config(path, environ=env).earnings.sync_times == ("08:00", "16:45")
    with pytest.raises(ConfigError, match="sync_times"):
        load_config(path, environ={"INGEST_EARNINGS__SYNC_TIMES": "9:30"})
