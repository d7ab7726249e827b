"""The command line as a user meets it: options anywhere, honest exits, one-line errors.

Issue 16 ("the first hour of a new user"): every symptom of the trial that needs no running
service is reproduced here against closed ports and silent sockets; those that need NATS,
PostgreSQL or the emulator are in tests/integration/test_cli_services.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.commands.cli import build_parser
from engine.commands.exitcodes import ExitCode
from testkit import ROOT, free_port

pytestmark = pytest.mark.timeout(60)


def cli(
    args: list[str], tmp_path: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``ingestion-agent ARGS`` in ``tmp_path``, no ``INGEST_*`` but ``env``, an empty config."""
    (tmp_path / "empty.toml").write_text("")
    base = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    base |= {
        "INGEST_CONFIG": str(tmp_path / "empty.toml"),
        "INGEST_LOG__FORMAT": "json",
        "INGEST_SYMBOLS__FILE": str(ROOT / "symbols.json"),
    }
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env=base | (env or {}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The stderr of a failed command: exactly one line, ``ingestion-agent: ...``."""
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ingestion-agent: "), lines[0]
    return lines[0]


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


class TestGlobalOptions:
    """Issue 16: options were not accepted after the subcommand."""

    @pytest.mark.parametrize(
        "argv",
        [
            ["--config", "x.toml", "run"],
            ["run", "--config", "x.toml"],
            ["db", "stats", "--config", "x.toml"],
            ["db", "--config", "x.toml", "stats"],
        ],
    )
    def test_config_before_or_after(self, argv: list[str]) -> None:
        assert build_parser().parse_args(argv).config == "x.toml"

    def test_unset_after_keeps_what_came_before(self) -> None:
        args = build_parser().parse_args(["-q", "--config", "a.toml", "dlq", "list"])
        assert (args.config, args.quiet, args.verbose) == ("a.toml", 1, 0)

    def test_verbosity_after(self) -> None:
        args = build_parser().parse_args(["config", "show", "-vv"])
        assert (args.quiet, args.verbose) == (0, 2)

    def test_usage_error_is_2(self, tmp_path: Path) -> None:
        done = cli(["run", "--bogus"], tmp_path)
        assert done.returncode == ExitCode.USAGE and "unrecognized arguments" in done.stderr

    def test_quiet_and_verbose_set_the_level(self, tmp_path: Path) -> None:
        assert 'level = "WARNING"' in cli(["config", "show", "-q"], tmp_path).stdout
        assert 'level = "DEBUG"' in cli(["-vv", "config", "show"], tmp_path).stdout
        assert 'level = "INFO"' in cli(["config", "show"], tmp_path).stdout


class TestConfigErrors:
    """Issue 16: tracebacks for `--config <a directory>` and a non-numeric DSN port; config
    check accepted an empty or mysql:// DSN, inf values, an unknown calendar and a missing
    symbols file. Each is now exit 2 and one line naming the key, the value and what is
    allowed."""

    def test_config_is_a_directory(self, tmp_path: Path) -> None:
        done = cli(["--config", str(tmp_path), "config", "check"], tmp_path)
        line = one_line_error(done)
        assert done.returncode == ExitCode.USAGE
        assert f"config file {tmp_path} is a directory" in line and "--config PATH" in line

    @pytest.mark.parametrize(
        ("env", "needles"),
        [
            ({"INGEST_POSTGRES__DSN": ""}, ["postgres.dsn", "is empty", "postgresql://"]),
            (
                {"INGEST_POSTGRES__DSN": "mysql://root:hunter2@db/x"},
                ["postgres.dsn", "'mysql://***@db/x'", "must start with postgresql://"],
            ),
            (
                {"INGEST_POSTGRES__DSN": "postgresql://u:hunter2@db:five/x"},
                ["postgres.dsn", "has port 'five'", "1-65535"],
            ),
            ({"INGEST_NATS__URL": "nats://a:4222,nats://b:x"}, ["nats.url", "has port 'x'"]),
            ({"INGEST_REDIS__URL": "http://r:6379"}, ["redis.url", "redis://"]),
            (
                {"INGEST_YAHOO__TIMEOUT_S": "inf"},
                ["yahoo.timeout_s = 'inf'", "INGEST_YAHOO__TIMEOUT_S", "finite number"],
            ),
            ({"INGEST_VALIDATION__DLQ_DEDUPE_S": "nan"}, ["validation.dlq_dedupe_s = 'nan'"]),
            (
                {"INGEST_EARNINGS__EXCHANGE_CALENDAR": "XNOPE"},
                ["earnings.exchange_calendar = 'XNOPE'", "is not an exchange calendar", "XNYS"],
            ),
            (
                {"INGEST_SYMBOLS__FILE": "nowhere.json"},
                ["symbols.file = 'nowhere.json'", "does not exist", "symbols check"],
            ),
        ],
    )
    def test_config_check_rejects(
        self, tmp_path: Path, env: dict[str, str], needles: list[str]
    ) -> None:
        done = cli(["config", "check"], tmp_path, env)
        line = one_line_error(done)
        assert done.returncode == ExitCode.USAGE
        for needle in needles:
            assert needle in line, line
        assert "hunter2" not in line

    def test_inf_in_the_file_too(self, tmp_path: Path) -> None:
        (tmp_path / "c.toml").write_text("[nats]\nack_timeout_s = inf\n")
        done = cli(["config", "check", "--config", str(tmp_path / "c.toml")], tmp_path)
        assert done.returncode == 2 and "nats.ack_timeout_s = inf (config file)" in done.stderr

    def test_good_config_says_where_it_came_from(self, tmp_path: Path) -> None:
        done = cli(["config", "check"], tmp_path, {"INGEST_WORKERS__COUNT": "2"})
        assert done.returncode == 0, done.stderr
        assert "configuration OK" in done.stdout and "INGEST_WORKERS__COUNT" in done.stdout
        assert "empty.toml" in done.stdout


class TestConfigShow:
    """Issue 16: `config show` did not say which file and which environment variables."""

    def test_text_names_file_and_variables(self, tmp_path: Path) -> None:
        (tmp_path / "c.toml").write_text("[workers]\ncount = 3\n")
        env = {
            "INGEST_CONFIG": str(tmp_path / "c.toml"),
            "INGEST_HTTP__PORT": "9200",
            "INGEST_NATS__URL": "nats://u:hunter2@127.0.0.1:4222",
        }
        done = cli(["config", "show"], tmp_path, env)
        first = done.stdout.splitlines()[0]
        assert f"file {tmp_path / 'c.toml'}" in first and "INGEST_HTTP__PORT" in first
        assert "port = 9200  # INGEST_HTTP__PORT" in done.stdout
        assert "count = 3\n" in done.stdout
        assert "hunter2" not in done.stdout and "nats://***@127.0.0.1:4222" in done.stdout

    def test_json(self, tmp_path: Path) -> None:
        done = cli(["config", "show", "--json"], tmp_path, {"INGEST_HTTP__PORT": "9200"})
        doc = json.loads(done.stdout)
        assert doc["file"].endswith("empty.toml")
        assert "INGEST_HTTP__PORT" in doc["environment"]
        assert doc["config"]["http"]["port"] == 9200


class TestServicesDown:
    """Issue 16: with NATS down `dlq list`, `dlq replay` and `earnings sync` hung silently.
    Each now fails within cli.service_timeout_s with one line naming the service and its URL,
    credentials redacted: exit 3."""

    @pytest.mark.parametrize(
        "argv",
        [["dlq", "list"], ["dlq", "replay"], ["dlq", "replay", "--dry-run"], ["earnings", "sync"]],
    )
    def test_refused(self, tmp_path: Path, argv: list[str]) -> None:
        port = free_port()
        env = {
            "INGEST_NATS__URL": f"nats://ingest:hunter2@127.0.0.1:{port}",
            "INGEST_POSTGRES__DSN": f"postgresql://u:hunter2@127.0.0.1:{free_port()}/x",
            "INGEST_REDIS__ENABLED": "false",
        }
        t0 = time.monotonic()
        done = cli(argv, tmp_path, env)
        elapsed = time.monotonic() - t0
        line = one_line_error(done)
        assert done.returncode == ExitCode.UNAVAILABLE
        assert line.startswith(f"ingestion-agent: NATS at nats://***@127.0.0.1:{port} ")
        assert "unreachable" in line and "check nats.url" in line and "hunter2" not in line
        assert elapsed < 10, elapsed

    def test_silent_server_is_bounded(self, tmp_path: Path) -> None:
        with silent_server() as port:
            env = {
                "INGEST_NATS__URL": f"nats://127.0.0.1:{port}",
                "INGEST_CLI__SERVICE_TIMEOUT_S": "1",
            }
            t0 = time.monotonic()
            done = cli(["dlq", "list"], tmp_path, env)
            elapsed = time.monotonic() - t0
        line = one_line_error(done)
        assert done.returncode == ExitCode.UNAVAILABLE
        assert f"NATS at nats://127.0.0.1:{port} did not answer within 1 s" in line
        assert elapsed < 6, elapsed

    @pytest.mark.parametrize("argv", [["db", "stats"], ["db", "migrate"], ["db", "maintain"]])
    def test_postgres_refused(self, tmp_path: Path, argv: list[str]) -> None:
        port = free_port()
        env = {"INGEST_POSTGRES__DSN": f"postgresql://u:hunter2@127.0.0.1:{port}/x"}
        done = cli(argv, tmp_path, env)
        line = one_line_error(done)
        assert done.returncode == ExitCode.UNAVAILABLE
        assert f"PostgreSQL at postgresql://***@127.0.0.1:{port}/x is unreachable" in line


class TestCompletion:
    """Issue 16: no shell completion. argcomplete's scripts for bash, zsh and fish, and the
    completions the CLI answers through them."""

    @pytest.mark.parametrize(
        ("shell", "marker"),
        [
            ("bash", "complete "),
            ("zsh", "#compdef ingestion-agent"),
            ("fish", "complete --command ingestion-agent"),
        ],
    )
    def test_script(self, tmp_path: Path, shell: str, marker: str) -> None:
        done = cli(["completion", shell], tmp_path)
        assert done.returncode == 0 and marker in done.stdout and "ingestion-agent" in done.stdout

    def test_bash_loads_it(self, tmp_path: Path) -> None:
        script = cli(["completion", "bash"], tmp_path).stdout
        (tmp_path / "c.bash").write_text(script)
        done = subprocess.run(
            ["bash", "-c", f"source {tmp_path / 'c.bash'} && complete -p ingestion-agent"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0 and "ingestion-agent" in done.stdout, done.stderr

    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ("ingestion-agent db ", {"migrate", "stats", "maintain"}),
            ("ingestion-agent dlq list --", {"--json", "--limit", "--config", "--quiet"}),
            ("ingestion-agent completion ", {"bash", "zsh", "fish"}),
        ],
    )
    def test_completes(self, tmp_path: Path, line: str, expected: set[str]) -> None:
        out = tmp_path / "completions"
        env = {
            "_ARGCOMPLETE": "1",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_IFS": "\n",
            "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        }
        cli([], tmp_path, env)
        got = {w.strip() for w in out.read_text().splitlines()}
        assert expected <= got, got
