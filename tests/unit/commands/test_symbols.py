"""engine.commands.symbols: ``ingestion-agent symbols check FILE``."""

from __future__ import annotations

import io
import json
from pathlib import Path

from engine.commands.symbols import check_command
from tests.unit.source.files import write


class TestCheckCommand:
    def run(self, path: Path | str, on_invalid: str = "reject") -> tuple[int, str]:
        out = io.StringIO()
        rc = check_command(str(path), on_invalid, out)
        return rc, out.getvalue()

    def test_summary(self, tmp_path: Path) -> None:
        """A good file prints count, first/last symbols and shard balance, and returns 0."""
        syms = [f"S{i}" for i in range(100)]
        rc, text = self.run(write(tmp_path, "s.json", json.dumps(syms)))
        assert rc == 0
        assert "OK, 100 symbols" in text
        assert "first: S0, S1, S2, S3, S4" in text
        assert "last:  S95, S96, S97, S98, S99" in text
        assert "shards: 64," in text and "symbols each" in text

    def test_problems_by_line(self, tmp_path: Path) -> None:
        """A bad file prints every problem with its line and returns 1."""
        rc, text = self.run(write(tmp_path, "s.json", '[\n"AAPL",\n"brk/b",\n"a b"\n]'))
        assert rc == 1
        assert "REJECTED" in text
        assert "line 3: brk/b: 'brk/b' is Nasdaq notation; Yahoo writes 'BRK-B'" in text
        assert "line 4: a b: illegal character ' '" in text
        assert "--on-invalid skip" in text

    def test_skip_mode_lists_skipped(self, tmp_path: Path) -> None:
        """In skip mode the file is usable (0) and the skipped lines are listed."""
        rc, text = self.run(write(tmp_path, "s.json", '[\n"AAPL",\n"BRK/RT"\n]'), "skip")
        assert rc == 0
        assert "OK, 1 symbols" in text and "skipped 1 invalid entries" in text
        assert "line 3: BRK/RT" in text

    def test_file_level_error(self, tmp_path: Path) -> None:
        """An unusable file prints the reason and returns 1."""
        rc, text = self.run(tmp_path / "missing.json")
        assert rc == 1 and "not found" in text

    def test_bad_mode(self, tmp_path: Path) -> None:
        """An unknown --on-invalid value is reported and returns 1."""
        rc, text = self.run(write(tmp_path, "s.json", '["AAPL"]'), "ignore")
        assert rc == 1 and "'reject' or 'skip'" in text

    def test_output_is_injection_safe(self, tmp_path: Path) -> None:
        """Control characters in a bad symbol are escaped, one problem per printed line."""
        rc, text = self.run(write(tmp_path, "s.json", '["AAPL", "A\\nB\\u001b[31m"]'))
        assert rc == 1
        assert "\x1b" not in text
        assert "line 1: 'A\\nB\\x1b[31m'" in text
