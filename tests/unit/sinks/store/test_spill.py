"""Spill files: names sort by creation and carry the row count; content round-trips."""

from __future__ import annotations

from pathlib import Path

from engine.sinks.store.spill import (
    read_spill_file,
    remove_spill_file,
    spill_paths,
    spill_rows,
    write_spill_file,
)
from tests.unit.sinks.store.quotes import make_quote


def test_write_read_list_remove(tmp_path: Path) -> None:
    d = tmp_path / "spill"
    assert spill_paths(d, "t") == []
    quotes = [make_quote(f"S{i}") for i in range(3)]
    first = write_spill_file(d, "t", quotes, 1)
    second = write_spill_file(d, "t", quotes[:1], 2)
    write_spill_file(d, "other", quotes, 3)
    assert spill_paths(d, "t") == [first, second]
    assert (spill_rows(first), spill_rows(second)) == (3, 1)
    assert read_spill_file(first) == quotes
    assert not list(d.glob("*.tmp"))
    remove_spill_file(first)
    assert spill_paths(d, "t") == [second]


def test_row_count_of_a_strange_name_is_zero() -> None:
    assert spill_rows(Path("t.spill")) == 0
    assert spill_rows(Path("t.x.y.many.spill")) == 0
