"""The ``console`` examples of README.md and docs/*.md, to be run by tests.

A ``console`` block holds commands (``$ [VAR=value ...] ingestion-agent ARGS``, optionally
ending in ``# exit N``; default 0) each followed by an example of its output. A test runs the
command and checks its exit status and the output's shape: every expected line's first word
(digits masked) starts some line of the real output, and every ``key=`` of the example is in it.
Values (counts, digests, times) are not compared: they change from run to run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from testkit import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```console\n(.*?)^```", re.M | re.S)
_EXIT = re.compile(r"\s+#\s*exit\s+(\d+)\s*$")
_DIGITS = re.compile(r"\d+")
_KEY = re.compile(r"\b([a-z_]+)=")


@dataclass(frozen=True)
class Example:
    where: str
    env: dict[str, str]
    argv: list[str]
    exit: int
    output: str

    @property
    def subcommand(self) -> str:
        return next((a for a in self.argv if not a.startswith("-")), "")

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


def examples() -> list[Example]:
    found: list[Example] = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for block in _BLOCK.finditer(text):
            line_no = text[: block.start()].count("\n") + 2
            current: dict[str, object] | None = None
            for i, line in enumerate(block.group(1).splitlines()):
                if line.startswith("$ "):
                    if current is not None:
                        found.append(_example(**current))  # type: ignore[arg-type]
                    current = {"where": f"{path.name}:{line_no + i}", "cmd": line[2:], "out": []}
                elif current is not None:
                    current["out"].append(line)  # type: ignore[attr-defined]
            if current is not None:
                found.append(_example(**current))  # type: ignore[arg-type]
    return found


def _example(where: str, cmd: str, out: list[str]) -> Example:
    m = _EXIT.search(cmd)
    status = int(m.group(1)) if m else 0
    words = shlex.split(_EXIT.sub("", cmd))
    env = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        k, _, v = words.pop(0).partition("=")
        env[k] = v
    assert words and words[0] == "ingestion-agent", f"{where}: only ingestion-agent examples"
    return Example(where, env, words[1:], status, "\n".join(out))


def shape_problems(example: Example, actual: str) -> list[str]:
    """What of the example's shape the real output lacks (empty: it has the same shape)."""
    got_lines = [_DIGITS.sub("#", ln.strip()) for ln in actual.splitlines()]
    problems = []
    for line in example.output.splitlines():
        if not line.strip():
            continue
        first = _DIGITS.sub("#", line.split()[0])
        if not any(g.startswith(first) for g in got_lines):
            problems.append(f"no line starts like {first!r}")
    missing = set(_KEY.findall(example.output)) - set(_KEY.findall(actual))
    if missing:
        problems.append(f"keys {sorted(missing)} not in the output")
    return problems
