"""The command examples of README.md and docs/ run as shown: exit status and output shape.

Examples that need no service run here (``config``, ``symbols``, ``completion``, and commands
pointed at a closed port); those that need NATS or the emulator run in
tests/integration/test_cli_services.py. See tests/doc_examples.py for the block format.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testkit import ROOT
from tests.doc_examples import Example, examples, shape_problems

pytestmark = pytest.mark.timeout(60)

_OFFLINE = {"config", "symbols", "completion"}


def offline(e: Example) -> bool:
    """Needs no service: a tool that reads files, or a service pointed at port 1 (closed)."""
    return e.subcommand in _OFFLINE or any(v.endswith(":1") for v in e.env.values())


def test_there_are_examples_of_both_kinds() -> None:
    found = examples()
    assert sum(map(offline, found)) >= 3 and any(not offline(e) for e in found)
    assert any(e.exit != 0 for e in found)


@pytest.mark.parametrize("example", [e for e in examples() if offline(e)], ids=str)
def test_offline_example(example: Example) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")} | example.env
    done = subprocess.run(
        [sys.executable, "-m", "engine", *example.argv],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    shown = done.stdout + done.stderr
    assert done.returncode == example.exit, f"{example}: exit {done.returncode}\n{shown[-2000:]}"
    problems = shape_problems(example, done.stdout if example.exit == 0 else shown)
    assert not problems, f"{example}: {problems}\n{shown[-2000:]}"


def test_shape_check_catches_drift() -> None:
    e = Example("x", {}, ["run", "--once"], 0, "cycle=1 requested=5 fetched=5 seconds=0.1")
    assert shape_problems(e, "cycle=2 requested=9 fetched=9 seconds=1.5") == []
    assert shape_problems(e, "cycle=2 requested=9 got=9 seconds=1.5") == [
        "keys ['fetched'] not in the output"
    ]
    listing = Example("x", {}, ["config", "check"], 0, "configuration OK (file config.toml)")
    assert shape_problems(listing, "config fine") == ["no line starts like 'configuration'"]
