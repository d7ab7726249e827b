"""Issue 16 ("the first hour of a new user") against the real services and the emulator: the
exit status of `run --once` through a NATS outage and with Yahoo unreachable, NATS without
JetStream, a multi-server NATS URL, and the machine-readable outputs.

Each run is one short engine process (a few symbols, 1 ms emulator latency): seconds each.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import EmulatorProcess, OwnNats, create_refusing_stream, free_port, stream_messages
from tests.conftest import NATS_URL, run_cli
from tests.doc_examples import Example, examples, shape_problems
from tests.integration.test_engine_cycle import _env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SYMBOLS = '["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL"]'


@pytest.fixture
def emu() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "1"]) as e:
        yield e


def env_for(
    emu: EmulatorProcess, names: dict[str, str], tmp_path: Path, **extra: str
) -> dict[str, str]:
    sym = tmp_path / "s.json"
    sym.write_text(SYMBOLS)
    return _env(emu.url, names, tmp_path, INGEST_SYMBOLS__FILE=str(sym), **extra)


def last_json(stdout: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(stdout.strip().splitlines()[-1])
    return doc


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("ingestion-agent: ")]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


class TestRunOnceExit:
    def test_nats_outage_then_recovery_both_exit_0(
        self, emu: EmulatorProcess, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Issue 16: no warning at start when NATS was unreachable, and the first run after
        the outage exited 1 though its quotes were durable. Now: a warning naming NATS, exit 0
        with the quotes outboxed; the next run replays them and exits 0, every quote once."""
        env = env_for(emu, nats_names, tmp_path)
        down = run_cli(
            ["run", "--once", "--json"],
            {**env, "INGEST_NATS__URL": f"nats://u:hunter2@127.0.0.1:{free_port()}"},
        )
        assert down.returncode == 0, down.stderr[-3000:]
        warned = [json.loads(ln) for ln in down.stderr.splitlines() if "service_unavailable" in ln]
        assert len(warned) == 1 and warned[0]["service"] == "NATS", down.stderr[-2000:]
        assert warned[0]["level"] == "warning" and "outbox" in warned[0]["meanwhile"]
        assert "hunter2" not in down.stderr
        doc = last_json(down.stdout)
        assert doc["status"] == "OK" and doc["outboxed"] == 5 and doc["published"] == 0
        up = run_cli(["run", "--once", "--json"], env)
        assert up.returncode == 0, up.stderr[-3000:]
        assert last_json(up.stdout)["status"] == "OK"
        assert "service_unavailable" not in up.stderr
        msgs = stream_messages(NATS_URL, nats_names["INGEST_NATS__STREAM"])
        ids = [h["Nats-Msg-Id"] for _, h in msgs]
        assert {p["symbol"] for p, _ in msgs} == set(json.loads(SYMBOLS))
        assert len(ids) == len(set(ids))

    def test_yahoo_unreachable_exits_3(
        self, emu: EmulatorProcess, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Issue 16: `run --once` with Yahoo unreachable exited 0 with fetched=0, and nothing
        was printed while the cycle waited on it. Now exit 3 with a line saying why, and a
        progress line (cycle_waiting) every interval (at most 10 s) while it waits."""
        with socket.socket() as silent:  # Yahoo accepts the connection and never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen(64)
            env = env_for(
                emu,
                nats_names,
                tmp_path,
                INGEST_YAHOO__BASE_URL=f"http://127.0.0.1:{silent.getsockname()[1]}",
                INGEST_YAHOO__TIMEOUT_S="2",
                INGEST_SCHEDULER__FETCH_TIMEOUT_S="3.5",
                INGEST_SCHEDULER__INTERVAL_S="1",
            )
            done = run_cli(["run", "--once"], env)
        assert done.returncode == 3, done.stderr[-3000:]
        assert "fetched=0" in done.stdout
        assert "Yahoo answered for 0 of 5 symbols" in one_line(done.stderr)
        waits = [json.loads(ln) for ln in done.stderr.splitlines() if '"cycle_waiting"' in ln]
        assert len(waits) >= 3, done.stderr[-3000:]
        assert all(w["level"] == "info" and w["requested"] == 5 for w in waits)
        assert [w["elapsed_s"] for w in waits] == sorted(w["elapsed_s"] for w in waits)

    def test_refused_messages_exit_4_and_dlq_list_json(
        self, emu: EmulatorProcess, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """A stream that refuses every message (max size): exit 4, the letters listed as JSON."""

        create_refusing_stream(
            NATS_URL, nats_names["INGEST_NATS__STREAM"], nats_names["INGEST_NATS__SUBJECT"]
        )
        env = env_for(emu, nats_names, tmp_path)
        done = run_cli(["run", "--once", "--json"], env)
        assert done.returncode == 4, done.stderr[-3000:]
        assert last_json(done.stdout)["refused"] == 5
        assert "JetStream refused 5 messages" in one_line(done.stderr)
        listed = run_cli(["dlq", "list", "--json", "--limit", "3"], env)
        doc = json.loads(listed.stdout)
        assert listed.returncode == 0 and doc["stream"] == nats_names["INGEST_NATS__DLQ_STREAM"]
        assert len(doc["letters"]) == 3
        assert {ltr["kind"] for ltr in doc["letters"]} == {"unpublishable"}
        assert all(isinstance(ltr["seq"], int) for ltr in doc["letters"])


class TestNats:
    def test_without_jetstream_is_one_line_exit_2(
        self, emu: EmulatorProcess, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Issue 16: NATS without JetStream gave tracebacks (and `run` a crash loop)."""
        server = OwnNats(tmp_path / "store", jetstream=False)
        server.start()
        try:
            env = env_for(emu, nats_names, tmp_path, INGEST_NATS__URL=server.url)
            for argv in (["dlq", "list"], ["run", "--once"], ["earnings", "sync"]):
                done = run_cli(
                    argv,
                    {**env, "INGEST_POSTGRES__ENABLED": "true"} if argv[0] == "earnings" else env,
                )
                assert done.returncode == 2, (argv, done.stderr[-3000:])
                line = one_line(done.stderr)
                assert f"NATS at {server.url} answers but has no JetStream" in line
        finally:
            server.kill()

    def test_multi_server_url(
        self, emu: EmulatorProcess, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Issue 16: a multi-server NATS URL gave a traceback; both servers are now used
        (the first is down here: the engine and the tools take the second)."""
        url = f"nats://127.0.0.1:{free_port()},{NATS_URL}"
        env = env_for(emu, nats_names, tmp_path, INGEST_NATS__URL=url)
        done = run_cli(["run", "--once", "--json"], env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert last_json(done.stdout)["published"] == 5
        listed = run_cli(["dlq", "list"], env)
        assert listed.returncode == 0 and "no dead letters" in listed.stdout

    def test_no_disconnect_warning_after_dlq_commands(
        self, nats_names: dict[str, str], tmp_path: Path
    ) -> None:
        """Issue 16: a spurious `nats_disconnected` warning after `dlq` commands."""
        env = _env("http://127.0.0.1:1", nats_names, tmp_path, INGEST_LOG__LEVEL="DEBUG")
        for argv in (["dlq", "list"], ["dlq", "list", "--json"], ["dlq", "replay", "--dry-run"]):
            done = run_cli(argv, env)
            assert done.returncode == 0, done.stderr[-2000:]
            assert "nats_disconnected" not in done.stderr and "warning" not in done.stderr


ONLINE_EXAMPLES = [
    e
    for e in examples()
    if e.subcommand in ("run", "dlq", "db", "earnings")
    and not any(v.endswith(":1") for v in e.env.values())
]


@pytest.mark.parametrize("example", ONLINE_EXAMPLES, ids=str)
def test_doc_example(
    example: Example, emu: EmulatorProcess, nats_names: dict[str, str], tmp_path: Path
) -> None:
    """The README/docs examples that need the services run as shown (exit status, shape)."""
    env = _env(emu.url, nats_names, tmp_path) | example.env
    done = run_cli(example.argv, env)
    assert done.returncode == example.exit, f"{example}: {done.stderr[-3000:]}"
    out = done.stdout if example.exit == 0 else done.stdout + done.stderr
    assert not shape_problems(example, out), f"{example}: {shape_problems(example, out)} {out}"


def test_postgres_refusing_the_database_is_exit_2(tmp_path: Path) -> None:
    """A DSN naming a database that does not exist: waiting will not fix it (exit 2, one line)
    rather than 'unavailable' (exit 3)."""
    env = _env(
        "http://127.0.0.1:1",
        {},
        tmp_path,
        INGEST_POSTGRES__DSN="postgresql://postgres:pw@127.0.0.1:5432/no_such_db_16",
        INGEST_POSTGRES__ENABLED="true",
    )
    done = run_cli(["db", "stats"], env)
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert "PostgreSQL at postgresql://***@127.0.0.1:5432/no_such_db_16 refused" in line
    assert "check postgres.dsn" in line and ":pw@" not in line
