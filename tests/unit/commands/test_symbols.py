"""engine.commands.symbols: ``ingestion-agent symbols check FILE``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.commands.exitcodes import ExitCode
from engine.commands.symbols import check_command, request_budget
from engine.config import Config, load_config
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
        """A bad file prints every problem with its line and exits 2 (bad input)."""
        rc, text = self.run(write(tmp_path, "s.json", '[\n"AAPL",\n"brk/b",\n"a b"\n]'))
        assert rc == ExitCode.USAGE == 2
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
        """An unusable file prints the reason and exits 2."""
        rc, text = self.run(tmp_path / "missing.json")
        assert rc == 2 and "not found" in text

    def test_bad_mode(self, tmp_path: Path) -> None:
        """An unknown --on-invalid value is reported and exits 2."""
        rc, text = self.run(write(tmp_path, "s.json", '["AAPL"]'), "ignore")
        assert rc == 2 and "--on-invalid must be" in text and "'ignore'" in text

    def test_output_is_injection_safe(self, tmp_path: Path) -> None:
        """Control characters in a bad symbol are escaped, one problem per printed line."""
        rc, text = self.run(write(tmp_path, "s.json", '["AAPL", "A\\nB\\u001b[31m"]'))
        assert rc == 2
        assert "\x1b" not in text
        assert "line 1: 'A\\nB\\x1b[31m'" in text


def bad_csv(tmp_path: Path, n_bad: int, n_good: int = 2) -> Path:
    """A CSV with ``n_good`` usable symbols then ``n_bad`` lines with an illegal space."""
    rows = ["symbol", *(f"OK{i}" for i in range(n_good)), *(f"BAD {i}" for i in range(n_bad))]
    return write(tmp_path, "s.csv", "\n".join(rows) + "\n")


class TestProblemsSummarised:
    """Issue 16: a million bad lines were all printed; the first 20 and a count now."""

    def test_first_20_then_a_count(self, tmp_path: Path) -> None:
        out = io.StringIO()
        rc = check_command(str(bad_csv(tmp_path, 1000)), "reject", out)
        lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("  line ")]
        assert rc == ExitCode.USAGE
        assert len(lines) == 20 and "BAD 0" in lines[0] and "BAD 19" in lines[-1]
        assert "... and 980 more (--limit 0 shows all)" in out.getvalue()
        assert "1000 invalid entries" in out.getvalue()

    def test_limit_zero_shows_all(self, tmp_path: Path) -> None:
        out = io.StringIO()
        check_command(str(bad_csv(tmp_path, 30)), "reject", out, limit=0)
        assert out.getvalue().count("  line ") == 30 and "more" not in out.getvalue()

    def test_skip_mode_summarised_too(self, tmp_path: Path) -> None:
        out = io.StringIO()
        rc = check_command(str(bad_csv(tmp_path, 50)), "skip", out)
        assert rc == ExitCode.OK
        assert out.getvalue().count("  line ") == 20 and "... and 30 more" in out.getvalue()

    def test_json_rejected(self, tmp_path: Path) -> None:
        out = io.StringIO()
        rc = check_command(str(bad_csv(tmp_path, 25)), "reject", out, fmt="json")
        doc = json.loads(out.getvalue())
        assert rc == 2 and doc["ok"] is False and doc["problems_total"] == 25
        assert len(doc["problems"]) == 20 and doc["problems"][0]["line"] == 4

    def test_json_usable(self, tmp_path: Path) -> None:
        out = io.StringIO()
        rc = check_command(str(bad_csv(tmp_path, 0, n_good=120)), "reject", out, fmt="json")
        doc = json.loads(out.getvalue())
        assert rc == 0 and doc["ok"] is True and doc["symbols"] == 120
        assert doc["shards"]["count"] == 64 and doc["budget"]["requests_per_cycle"] == 3
        assert doc["budget"]["exceeded"] is False


class TestRequestBudget:
    """Issue 16: no warning when the universe cannot be polled within Yahoo's budget."""

    def test_default_budget_covers_5000(self) -> None:
        b = request_budget(5000, Config())
        assert (b.requests_per_cycle, b.requests_per_hour) == (100, 36_000)
        assert b.budget_per_hour == 36_000 and not b.exceeded

    def test_warns_when_the_universe_needs_more(self, tmp_path: Path) -> None:
        config = load_config(
            None, {"INGEST_YAHOO__BATCH_SIZE": "1", "INGEST_YAHOO__RATE_INITIAL_RPS": "0.5"}
        )
        out = io.StringIO()
        rc = check_command(str(bad_csv(tmp_path, 0, n_good=10)), "reject", out, config=config)
        text = out.getvalue()
        assert rc == 0  # usable; the warning says how to make it pollable
        assert "needs 3,600 Yahoo requests per hour" in text and "budget is 1,800" in text
        assert "a full pass would take 2 cycles" in text and "scheduler.interval_s" in text

    def test_no_warning_within_budget(self, tmp_path: Path) -> None:
        out = io.StringIO()
        check_command(str(bad_csv(tmp_path, 0, n_good=10)), "reject", out)
        assert "warning:" not in out.getvalue() and "requests per hour" not in out.getvalue()


@pytest.mark.timeout(30)
def test_survives_a_closed_pipe(tmp_path: Path) -> None:
    """Issue 16: ``symbols check | head`` died with BrokenPipeError; now quiet, and the exit
    status is still the verdict (2: rejected)."""
    path = bad_csv(tmp_path, 200_000)
    done = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f"{sys.executable} -m engine symbols check {path} --on-invalid reject --limit 0"
            " | head -n 3",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "INGEST_CONFIG": ""},
    )
    assert done.stdout.splitlines()[0].endswith("REJECTED")
    assert len(done.stdout.splitlines()) == 3
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 2
