"""``ingestion-agent symbols check FILE``: is a symbols file usable, and how does it shard."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, TextIO, get_args

from engine.config import OnInvalid, WorkersSettings
from engine.errors import SymbolsError
from engine.source.shards import build_shards
from engine.source.universe import Universe, load_symbols

_DEFAULT_SHARDS: Final = WorkersSettings().shards


def check_command(
    path: str, on_invalid: str, out: TextIO, *, n_shards: int = _DEFAULT_SHARDS
) -> int:
    """``ingestion-agent symbols check FILE``: print a summary or every problem; 0 = usable."""
    if on_invalid not in get_args(OnInvalid):
        print(f"error: --on-invalid must be 'reject' or 'skip', not {on_invalid!r}", file=out)
        return 1
    mode: OnInvalid = "skip" if on_invalid == "skip" else "reject"
    try:
        universe = load_symbols(path, mode)
    except SymbolsError as exc:
        print(f"{path}: REJECTED", file=out)
        if not exc.problems:  # the file as a whole is unusable; the message says why
            print(f"  {exc}", file=out)
            return 1
        _print_problems(exc.problems, out)
        hint = "correct those lines"
        if mode == "reject":
            hint += ', or set symbols.on_invalid = "skip" (--on-invalid skip) to drop them'
        print(f"{len(exc.problems)} invalid entries: {hint}", file=out)
        return 1
    _print_summary(universe, n_shards, out)
    if universe.skipped:
        print(f"skipped {len(universe.skipped)} invalid entries:", file=out)
        _print_problems(universe.skipped, out)
    return 0


def _print_problems(problems: Iterable[tuple[int, str, str]], out: TextIO) -> None:
    for line, symbol, reason in problems:
        print(f"  line {line}: {symbol or '-'}: {reason}", file=out)


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
