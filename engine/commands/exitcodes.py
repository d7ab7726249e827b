"""The exit status of ``ingestion-agent``: one table, followed by every command.

:class:`ExitCode` is the table; docs/errors.md ("Exit status") is rendered from it by
:func:`markdown_table` and ``tests/unit/commands/test_exitcodes.py`` fails when they differ.
:func:`once_exit` is the verdict of ``run --once`` on its cycle, a pure function of the figures.
"""

from __future__ import annotations

import enum
from typing import Final

from engine.stats import CycleStats

MIN_FETCHED_SHARE: Final = 0.95
"""``run --once`` default: the share of the requested symbols Yahoo must have answered for."""


class ExitCode(enum.IntEnum):
    """Exit status of every ``ingestion-agent`` command."""

    OK = 0
    FAILED = 1
    USAGE = 2
    UNAVAILABLE = 3
    SINK_REFUSED = 4
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return _MEANING[self]


_MEANING: Final = {
    ExitCode.OK: (
        "Success. `run --once`: every quote fetched is durable (acknowledged by JetStream or "
        "in the durable outbox, and in PostgreSQL or its spill) and Yahoo answered for at least "
        "`--min-fetched` (default 0.95) of the requested symbols."
    ),
    ExitCode.FAILED: (
        "The work did not complete: `run --once` whose cycle did not finish (`--timeout`); "
        "`dlq replay` with letters it could not re-drive; `earnings sync` that failed; "
        "`db maintain` on a table that is not migrated; any other engine error."
    ),
    ExitCode.USAGE: (
        "Bad input, nothing done: command-line arguments, configuration (file or `INGEST_*`), "
        "symbols file; a fatal set-up refusal of the engine (a stream that cannot be created, "
        "NATS without JetStream, PostgreSQL refusing the credentials or the schema)."
    ),
    ExitCode.UNAVAILABLE: (
        "A service did not answer: `run --once` got quotes for fewer than `--min-fetched` of "
        "the symbols (Yahoo unreachable, refusing or timing out); a command that needs NATS, "
        "PostgreSQL or Redis could not reach it within `cli.service_timeout_s` (one line names "
        "the service and its URL, credentials redacted)."
    ),
    ExitCode.SINK_REFUSED: (
        "A sink refused data: `run --once` with messages JetStream refused (too large for the "
        "stream, subject no longer bound; dead-lettered as `unpublishable`)."
    ),
    ExitCode.INTERRUPTED: "Interrupted (Ctrl-C / SIGINT) during a command.",
}


def markdown_table() -> str:
    """The exit-status table of docs/errors.md."""
    rows = ["| status | name | when |", "|---|---|---|"]
    rows += [f"| {c.value} | `{c.name}` | {c.meaning} |" for c in ExitCode]
    return "\n".join(rows) + "\n"


def fetched_share(stats: CycleStats) -> float:
    """The share of the requested symbols Yahoo answered for (valid or rejected quotes)."""
    f = stats.fetch
    return f.fetched / f.requested if f.requested else 0.0


def once_exit(stats: CycleStats | None, *, min_fetched: float = MIN_FETCHED_SHARE) -> ExitCode:
    """The exit status of ``run --once`` for its cycle (None: it did not complete).

    A refused message outranks a poor fetch: what was fetched and lost matters first.
    """
    if stats is None:
        return ExitCode.FAILED
    if stats.publish.failed:
        return ExitCode.SINK_REFUSED
    if stats.fetch.requested == 0 or fetched_share(stats) < min_fetched:
        return ExitCode.UNAVAILABLE
    return ExitCode.OK
