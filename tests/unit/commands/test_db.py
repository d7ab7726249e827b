"""``ingestion-agent db``: argument wiring and the text report (SQL: tests/integration)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import engine.commands.db as dbcli
from engine.commands import cli
from engine.commands.db import DayStats, PartitionInfo, TableStats, _parse_bound, format_stats

UTC = dt.UTC
DAY = dt.date(2026, 11, 26)


def test_parser_knows_every_db_command() -> None:
    p = cli.build_parser()
    assert p.parse_args(["db", "stats"]).json is False
    assert p.parse_args(["db", "stats", "--json"]).json is True
    args = p.parse_args(["db", "maintain", "--date", "2026-11-26"])
    assert (args.db_command, args.date) == ("maintain", dt.date(2026, 11, 26))
    assert p.parse_args(["db", "maintain"]).date is None
    with pytest.raises(SystemExit):
        p.parse_args(["db", "maintain", "--date", "26/11/2026"])


@pytest.mark.parametrize(
    ("argv", "called"),
    [
        (["db", "maintain", "--date", "2026-11-26"], ("maintain", {"today": DAY})),
        (["db", "maintain"], ("maintain", {"today": None})),
        (["db", "stats"], ("stats", {"fmt": "text"})),
        (["db", "stats", "--json"], ("stats", {"fmt": "json"})),
    ],
)
def test_main_runs_the_command(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], called: tuple[str, dict[str, Any]]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def fake(name: str) -> Any:
        async def command(settings: Any, out: Any, **kw: Any) -> int:
            seen.append((name, kw))
            return 0

        return command

    monkeypatch.setattr(dbcli, "maintain_command", fake("maintain"))
    monkeypatch.setattr(dbcli, "stats_command", fake("stats"))
    monkeypatch.delenv("INGEST_CONFIG", raising=False)
    monkeypatch.chdir("/")
    assert cli.main(argv) == 0
    assert seen == [called]


def test_partition_bound_is_parsed() -> None:
    bound = "FOR VALUES FROM ('2026-11-26 00:00:00+00') TO ('2026-11-27 00:00:00+00')"
    assert _parse_bound(bound) == (
        dt.datetime(2026, 11, 26, tzinfo=UTC),
        dt.datetime(2026, 11, 27, tzinfo=UTC),
    )
    assert _parse_bound("DEFAULT") == (None, None)
    assert _parse_bound("FOR VALUES FROM ('x') TO ('y')") == (None, None)


def test_text_report() -> None:
    t0 = dt.datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
    st = TableStats(
        table="market_data",
        mode="native",
        manager="engine",
        schema_version=3,
        rows=1234,
        oldest=t0,
        newest=t0,
        total_bytes=3 * 1024 * 1024,
        days=[DayStats(t0.date(), 1234, t0, t0)],
        partitions=[PartitionInfo("market_data_p20261126", t0, t0, 2048)],
    )
    text = format_stats(st)
    assert "native daily partitions managed by engine, schema version 3" in text
    assert "rows          1,234" in text and "3.0 MiB" in text
    assert "2026-11-26" in text and "partitions (1)" in text and "2.0 KiB" in text
    empty = TableStats("t", None, None, 0, 0, None, None, 0)
    assert "(no rows)" in format_stats(empty) and "unmanaged" in format_stats(empty)
