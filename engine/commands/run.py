"""``ingestion-agent run [--once]``: check what the configuration names, say which services do
not answer, run the engine, and (``--once``) print the cycle's summary and its verdict.

At start every service is probed once within ``cli.service_timeout_s``: one that does not answer
is a warning saying where its data waits meanwhile (NATS: the outbox; PostgreSQL: memory and the
spill; Redis: the next refresh); the engine starts anyway and catches up when it is back. A NATS
server without JetStream, a missing symbols file or an unknown calendar stop the start (exit 2).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

from engine.commands.config import reference_problems
from engine.commands.exitcodes import MIN_FETCHED_SHARE, ExitCode, fetched_share, once_exit
from engine.commands.output import write_json
from engine.config import Config
from engine.deps.probe import unavailable
from engine.stats import CycleStats

log = logging.getLogger(__name__)

MEANWHILE = {
    "NATS": "quotes wait in the durable outbox (nats.outbox_dir) until it answers",
    "PostgreSQL": "rows wait in memory and the spill (postgres.spill_dir) until it answers",
    "Redis": "the latest quotes are written once it answers",
}


async def warn_unavailable(config: Config) -> None:
    """One warning per service that does not answer at start (a server without JetStream
    raises :class:`~engine.errors.ConfigError`)."""
    for e in await unavailable(config, ("nats", "postgres", "redis")):
        log.warning(
            "service_unavailable",
            extra={"service": e.service, "url": e.url, "error": e.reason,
                   "meanwhile": MEANWHILE.get(e.service, "")},
        )  # fmt: skip


def summary_doc(stats: CycleStats | None, code: ExitCode) -> dict[str, Any]:
    """``run --once --json``: the cycle's figures, the share fetched and the verdict."""
    doc: dict[str, Any] = {"completed": stats is not None}
    if stats is not None:
        f, p = stats.fetch, stats.publish
        doc |= {
            "cycle": stats.cycle,
            "requested": f.requested,
            "fetched": f.fetched,
            "fetched_share": round(fetched_share(stats), 4),
            "valid": f.valid,
            "rejected": sum(f.rejected.values()),
            "rejected_by_reason": dict(sorted(f.rejected.items())),
            "published": p.published,
            "deduplicated": p.deduplicated + f.unchanged,
            "failed": f.failed + p.failed,
            "refused": p.failed,
            "outboxed": p.outboxed,
            "missing": f.missing,
            "errors": dict(sorted(f.errors.items())),
            "seconds": round(stats.seconds, 3),
        }
    return doc | {"exit_code": int(code), "status": code.name}


def _explain(stats: CycleStats | None, code: ExitCode, min_fetched: float) -> str | None:
    """One stderr line saying why ``run --once`` did not exit 0."""
    if code is ExitCode.OK:
        return None
    if stats is None:
        return "the cycle did not complete (see the log above; --timeout?)"
    if code is ExitCode.SINK_REFUSED:
        return (
            f"JetStream refused {stats.publish.failed} messages (dead-lettered as "
            "unpublishable): see `ingestion-agent dlq list`"
        )
    f = stats.fetch
    errors = ", ".join(f"{k}={v}" for k, v in sorted(f.errors.items())) or "none"
    return (
        f"Yahoo answered for {f.fetched} of {f.requested} symbols "
        f"({fetched_share(stats):.0%}, below --min-fetched {min_fetched:g}; "
        f"failed={f.failed} missing={f.missing}; errors: {errors}): is Yahoo reachable? "
        "check yahoo.base_url and the log above"
    )


async def run_command(
    config: Config,
    out: TextIO,
    *,
    once: bool = False,
    timeout_s: float | None = None,
    min_fetched: float = MIN_FETCHED_SHARE,
    fmt: Literal["text", "json"] = "text",
    err: TextIO | None = None,
) -> int:
    """Run the engine; the exit status follows docs/errors.md (:class:`ExitCode`)."""
    from engine.supervisor import run_engine

    err = err or sys.stderr
    problems = reference_problems(config, calendar=config.earnings.enabled and not once)
    if problems:
        raise problems[0]
    await warn_unavailable(config)
    result = await run_engine(config, once=once, timeout_s=timeout_s)
    if result.fatal:
        print(f"ingestion-agent: fatal: {result.fatal}", file=err, flush=True)
        return ExitCode.USAGE
    if not once:
        return ExitCode.OK
    code = once_exit(result.last, min_fetched=min_fetched)
    if fmt == "json":
        write_json(out, summary_doc(result.last, code))
    elif result.last is not None:
        print(result.last.line(), file=out, flush=True)
    why = _explain(result.last, code, min_fetched)
    if why:
        print(f"ingestion-agent: {why} (exit {int(code)})", file=err, flush=True)
    return code
