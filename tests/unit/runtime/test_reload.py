"""SIGHUP reload: a changed file is taken, a bad or unchanged one keeps the running universe."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engine.config import Config, SymbolsSettings
from engine.runtime.reload import ReloadRequest, reload_symbols
from engine.source.universe import load_symbols


def _config(path: Path) -> Config:
    return msgspec.structs.replace(Config(), symbols=SymbolsSettings(file=str(path)))


def test_a_request_is_taken_once() -> None:
    r = ReloadRequest()
    assert not r.take()
    r.request()
    assert r.take()
    assert not r.take()


def test_reload_takes_a_changed_file_and_keeps_the_universe_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "symbols.json"
    path.write_text('["AAPL", "MSFT"]', encoding="utf-8")
    current = load_symbols(path)
    config = _config(path)
    assert reload_symbols(config, current) is None  # unchanged
    path.write_text('["AAPL", "MSFT", "NVDA"]', encoding="utf-8")
    new = reload_symbols(config, current)
    assert new is not None and new.symbols == ("AAPL", "MSFT", "NVDA")
    path.write_text("not a symbols file {", encoding="utf-8")
    assert reload_symbols(config, current) is None  # rejected: the old universe stays


def test_reload_summarises_skipped_lines_in_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reloaded file with many unusable lines logs one symbols_skipped warning, not one per
    line; its translations are one symbols_translated line."""
    path = tmp_path / "symbols.csv"
    path.write_text("symbol\nAAPL\n", encoding="utf-8")
    current = load_symbols(path)
    bad = "\n".join(f"x{i}" for i in range(50))
    path.write_text(f"symbol\nAAPL\nBRK/B\n{bad}\n", encoding="utf-8")
    caplog.set_level("INFO")
    new = reload_symbols(_config(path), current)
    assert new is not None and new.symbols == ("AAPL", "BRK-B")
    events = [r.getMessage() for r in caplog.records]
    assert events.count("symbols_skipped") == 1
    assert events.count("symbols_translated") == 1
    assert "symbols_reloaded" in events
