"""Shared fixtures: the Yahoo emulator as a real server process, unique NATS names, engine runs.

A run that selects integration tests (tests/integration/, or marked ``integration``) first checks
that NATS, PostgreSQL (the ``TEST_POSTGRES_DSN`` database) and Redis answer, and stops at once
with one line naming those that do not and how to start them: the tests never start services
(``make setup`` does). Unit and emulator tests alone need none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from testkit import ROOT, EmulatorProcess, delete_streams
from testkit.services import NATS_URL, missing_message, missing_services

INTEGRATION_DIR = ROOT / "tests" / "integration"


def _needs_services(item: pytest.Item) -> bool:
    return (
        item.path.is_relative_to(INTEGRATION_DIR)
        or item.get_closest_marker("integration") is not None
    )


def _stop_if_services_missing() -> None:
    missing = missing_services(timeout_s=2.0)
    if missing:
        pytest.exit(missing_message(missing), returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop the run (exit code 4) when selected tests need services that do not answer.

    Under pytest-xdist the workers leave this to the controller (a worker that exits only
    crashes), which checks once the first worker has collected
    (:func:`pytest_xdist_node_collection_finished`)."""
    config = session.config
    if config.option.collectonly or hasattr(config, "workerinput"):
        return
    if any(map(_needs_services, session.items)):
        _stop_if_services_missing()


_SERVICES_CHECKED = pytest.StashKey[bool]()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: Sequence[str]) -> None:
    """pytest-xdist's controller: the check of :func:`pytest_collection_finish`, once per run,
    on the test ids the first worker collected (the controller has no items, so it goes by
    path: integration tests live in tests/integration/)."""
    config: pytest.Config = node.config
    if config.stash.get(_SERVICES_CHECKED, False):
        return
    config.stash[_SERVICES_CHECKED] = True
    paths = {nodeid.split("::", 1)[0] for nodeid in ids}
    if any((config.rootpath / p).is_relative_to(INTEGRATION_DIR) for p in paths):
        _stop_if_services_missing()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    """The bundled Yahoo emulator on an ephemeral port, market REGULAR, 5 ms latency."""
    with EmulatorProcess(["--market-state", "REGULAR", "--latency-ms", "5", "--seed", "7"]) as emu:
        yield emu


@pytest.fixture
def nats_names(uid: str) -> Iterator[dict[str, str]]:
    """Unique stream and subject names for one test, deleted afterwards."""
    names = {
        "INGEST_NATS__STREAM": f"T_{uid}_QUOTES",
        "INGEST_NATS__SUBJECT": f"test.{uid}.market.quote",
        "INGEST_NATS__DLQ_STREAM": f"T_{uid}_DLQ",
        "INGEST_NATS__DLQ_SUBJECT": f"test.{uid}.market.dlq",
    }
    yield names
    delete_streams(NATS_URL, [names["INGEST_NATS__STREAM"], names["INGEST_NATS__DLQ_STREAM"]])


@pytest.fixture
def engine_env(
    emulator: EmulatorProcess, nats_names: dict[str, str], tmp_path: Path
) -> dict[str, str]:
    """Environment for an engine subprocess against the emulator and the real NATS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(nats_names)
    env.update(
        {
            "INGEST_NATS__URL": NATS_URL,
            "INGEST_YAHOO__BASE_URL": emulator.url,
            "INGEST_YAHOO__MAX_IN_FLIGHT": "16",
            "INGEST_YAHOO__CRUMB_MIN_INTERVAL_S": "0",
            "INGEST_YAHOO__BACKOFF_BASE_S": "0.05",
            "INGEST_WORKERS__COUNT": "2",
            "INGEST_SCHEDULER__INTERVAL_S": "2",
            "INGEST_SCHEDULER__SHUTDOWN_GRACE_S": "10",
            "INGEST_SYMBOLS__FILE": str(ROOT / "symbols.json"),
            "INGEST_POSTGRES__ENABLED": "false",
            "INGEST_REDIS__ENABLED": "false",
            "INGEST_HTTP__ENABLED": "false",
            "INGEST_EARNINGS__ENABLED": "false",
            "INGEST_LOG__FORMAT": "json",
            "INGEST_NATS__OUTBOX_DIR": str(tmp_path / "outbox"),
            "INGEST_POSTGRES__SPILL_DIR": str(tmp_path / "spill"),
            "INGEST_CONFIG": str(tmp_path / "absent-ok.toml"),
        }
    )
    (tmp_path / "absent-ok.toml").write_text("")
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
