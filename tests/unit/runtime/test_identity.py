"""The identity restore's pure parts: parsing a cached quote, seeding the last-seen table, and
nothing to do when unchanged quotes are not skipped."""

from __future__ import annotations

from engine.config import Config, WorkersSettings
from engine.ringbuf import LastSeenTable
from engine.runtime import identity


def test_cached_document_gives_market_time_and_volume() -> None:
    assert identity._identity(b'{"market_time": 1764000000, "volume": 12, "x": 1}') == (
        1764000000,
        12,
    )
    assert identity._identity(b'{"market_time": 1764000000, "volume": null}') == (1764000000, 0)
    assert identity._identity(b'{"volume": 3}') is None
    assert identity._identity(b"not json") is None
    assert identity._identity(None) is None


def test_seed_writes_the_rows_of_known_symbols() -> None:
    table = LastSeenTable.create(3)
    try:
        n = identity.seed(table, {"A": 0, "B": 2}, {"A": (100, 5), "B": (200, 7), "GONE": (300, 9)})
        assert n == 2
        assert table.times.tolist() == [100, 0, 200]
        assert table.volumes.tolist() == [5, 0, 7]
        assert table.ok_cycle.tolist() == [0, 0, 0]
    finally:
        table.close()


async def test_nothing_is_restored_when_unchanged_quotes_are_not_skipped() -> None:
    config = Config(workers=WorkersSettings(skip_unchanged=False))
    assert await identity.restore(config, ["AAPL"]) == {}
