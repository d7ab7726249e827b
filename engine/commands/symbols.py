"""``ingestion-agent symbols check FILE``: is a symbols file usable, how does it shard, and can
it be polled within the configured Yahoo request budget.

Exit status: 0 usable (problems skipped in ``skip`` mode are listed), 2 rejected (bad input, as
at the engine's start). The first ``limit`` problems are shown, then how many more there are;
``fmt="json"`` prints the same as one JSON document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO, cast, get_args

from engine.commands.exitcodes import ExitCode
from engine.commands.output import write_json
from engine.config import Config, OnInvalid
from engine.errors import SymbolsError
from engine.source.shards import build_shards
from engine.source.universe import Universe, load_symbols

DEFAULT_LIMIT = 20
"""Problems shown by default (a million bad lines are summarised, not printed)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """What polling a universe every interval asks of Yahoo, against the configured rate."""

    requests_per_cycle: int
    requests_per_hour: int
    budget_per_hour: int
    """``yahoo.rate_initial_rps`` sustained for an hour: the rate the limiter starts at."""

    @property
    def exceeded(self) -> bool:
        return self.requests_per_hour > self.budget_per_hour

    @property
    def cycles_per_pass(self) -> int:
        """Intervals one full pass over the universe takes at the budget (>= 1)."""
        if self.budget_per_hour <= 0:
            return 1 << 30
        return max(1, math.ceil(self.requests_per_hour / self.budget_per_hour))


def request_budget(n_symbols: int, config: Config) -> Budget:
    """Requests a universe of ``n_symbols`` needs per cycle and per hour, and the budget."""
    per_cycle = math.ceil(n_symbols / config.yahoo.batch_size)
    cycles_per_hour = 3600.0 / config.scheduler.interval_s
    return Budget(
        requests_per_cycle=per_cycle,
        requests_per_hour=math.ceil(per_cycle * cycles_per_hour),
        budget_per_hour=int(config.yahoo.rate_initial_rps * 3600),
    )


def budget_warning(b: Budget, config: Config) -> str:
    y, s = config.yahoo, config.scheduler
    return (
        f"warning: this universe needs {b.requests_per_hour:,} Yahoo requests per hour "
        f"({b.requests_per_cycle} requests of {y.batch_size} symbols every {s.interval_s:g} s) "
        f"but the configured budget is {b.budget_per_hour:,} (yahoo.rate_initial_rps = "
        f"{y.rate_initial_rps:g}/s): a full pass would take {b.cycles_per_pass} cycles. "
        "Raise scheduler.interval_s or yahoo.batch_size, or (if Yahoo allows it) "
        "yahoo.rate_initial_rps"
    )


def check_command(
    path: str,
    on_invalid: str,
    out: TextIO,
    *,
    config: Config | None = None,
    limit: int = DEFAULT_LIMIT,
    fmt: Literal["text", "json"] = "text",
) -> int:
    """``ingestion-agent symbols check FILE``: a summary, or the problems; 0 = usable."""
    config = config or Config()
    if on_invalid not in get_args(OnInvalid):
        allowed = " or ".join(repr(m) for m in get_args(OnInvalid))
        print(f"error: --on-invalid must be {allowed}, not {on_invalid!r}", file=out)
        return ExitCode.USAGE
    mode = cast(OnInvalid, on_invalid)  # checked just above
    try:
        universe = load_symbols(path, mode)
    except SymbolsError as exc:
        if fmt == "json":
            write_json(out, _rejected_doc(path, exc, limit))
        else:
            _print_rejected(path, mode, exc, limit, out)
        return ExitCode.USAGE
    budget = request_budget(len(universe.symbols), config)
    if fmt == "json":
        write_json(out, _usable_doc(universe, config, budget, limit))
        return ExitCode.OK
    _print_summary(universe, config.workers.shards, out)
    if universe.skipped:
        print(f"skipped {len(universe.skipped)} invalid entries:", file=out)
        _print_problems(universe.skipped, limit, out)
    if budget.exceeded:
        print(budget_warning(budget, config), file=out)
    return ExitCode.OK


def _print_rejected(path: str, mode: str, exc: SymbolsError, limit: int, out: TextIO) -> None:
    print(f"{path}: REJECTED", file=out)
    if not exc.problems:  # the file as a whole is unusable; the message says why
        print(f"  {exc}", file=out)
        return
    _print_problems(exc.problems, limit, out)
    hint = "correct those lines"
    if mode != "skip" and "skip" in get_args(OnInvalid):
        hint += ', or set symbols.on_invalid = "skip" (--on-invalid skip) to drop them'
    print(f"{len(exc.problems)} invalid entries: {hint}", file=out)


def _shown(problems: Sequence[tuple[int, str, str]], limit: int) -> Sequence[tuple[int, str, str]]:
    return problems if limit == 0 else problems[:limit]


def _print_problems(problems: Sequence[tuple[int, str, str]], limit: int, out: TextIO) -> None:
    shown = _shown(problems, limit)
    for line, symbol, reason in shown:
        print(f"  line {line}: {symbol or '-'}: {reason}", file=out)
    if len(problems) > len(shown):
        more = len(problems) - len(shown)
        print(f"  ... and {more:,} more (--limit 0 shows all)", file=out)


def _problem_docs(problems: Sequence[tuple[int, str, str]], limit: int) -> list[dict[str, Any]]:
    return [{"line": ln, "symbol": s, "reason": r} for ln, s, r in _shown(problems, limit)]


def _rejected_doc(path: str, exc: SymbolsError, limit: int) -> dict[str, Any]:
    return {
        "file": path,
        "ok": False,
        "error": str(exc) if not exc.problems else None,
        "problems_total": len(exc.problems),
        "problems": _problem_docs(exc.problems, limit),
    }


def _usable_doc(universe: Universe, config: Config, budget: Budget, limit: int) -> dict[str, Any]:
    n_shards = config.workers.shards
    sizes = [len(s.symbols) for s in build_shards(universe, n_shards)]
    return {
        "file": universe.source,
        "ok": True,
        "symbols": len(universe.symbols),
        "digest": universe.digest,
        "shards": {
            "count": n_shards,
            "min": min(sizes),
            "max": max(sizes),
            "empty": sizes.count(0),
        },
        "skipped_total": len(universe.skipped),
        "skipped": _problem_docs(universe.skipped, limit),
        "budget": {
            "requests_per_cycle": budget.requests_per_cycle,
            "requests_per_hour": budget.requests_per_hour,
            "budget_per_hour": budget.budget_per_hour,
            "exceeded": budget.exceeded,
        },
    }


def _print_summary(universe: Universe, n_shards: int, out: TextIO) -> None:
    syms = universe.symbols
    sizes = [len(s.symbols) for s in build_shards(universe, n_shards)]
    print(f"{universe.source}: OK, {len(syms)} symbols, digest {universe.digest[:16]}", file=out)
    print(f"  first: {', '.join(syms[:5])}", file=out)
    print(f"  last:  {', '.join(syms[-5:])}", file=out)
    print(
        f"  shards: {n_shards}, {min(sizes)}-{max(sizes)} symbols each "
        f"(mean {len(syms) / n_shards:.1f}), {sizes.count(0)} empty",
        file=out,
    )
