"""``ingestion-agent`` command line: parse -> Config -> the supervisor or a one-shot tool.

Exit status: :class:`engine.commands.exitcodes.ExitCode` (the table of docs/errors.md). Nothing a
user can cause ends in a traceback: errors are one line on stderr, ``ingestion-agent: ...``.

The global options (``--config``, ``-q``, ``-v``) are accepted before or after the subcommand
(``ingestion-agent --config x.toml run`` = ``ingestion-agent run --config x.toml``): each
subcommand's parser carries them too, with defaults that do not override the ones given first.
Shell completion (bash, zsh, fish) is argcomplete's: ``ingestion-agent completion SHELL`` prints
the script to load.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import logging
import math
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO, TypeVar, get_args

import argcomplete
import msgspec
import uvloop
from argcomplete.shell_integration import shellcode

from engine import __version__
from engine.commands.exitcodes import MIN_FETCHED_SHARE, ExitCode
from engine.commands.output import pipe_safe
from engine.config import Config, LoadedConfig, LogLevel, OnInvalid, load
from engine.errors import ConfigError, IngestionError, ServiceUnavailableError, SymbolsError
from engine.observe import logs
from engine.runtime.startup import TIMER

if TYPE_CHECKING:  # the probes import nats, asyncpg and redis: not for --help or completion
    from engine.deps.probe import Name

DEFAULT_CONFIG: Final = "config.toml"
PROG: Final = "ingestion-agent"
SHELLS: Final = ("bash", "zsh", "fish")

T = TypeVar("T")
Format = Literal["text", "json"]


def _number(
    parse: Callable[[str], T], what: str, ok: Callable[[T], bool], rule: str
) -> Callable[[str], T]:
    """An argparse ``type``: ``parse`` the text (else "is not {what}"), then check it with
    ``ok`` (else "must be {rule}")."""

    def convert(text: str) -> T:
        try:
            v = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return v

    return convert


_positive_float = _number(float, "a number", lambda v: 0 < v < math.inf, "a finite number > 0")
_share = _number(float, "a number", lambda v: 0 <= v <= 1, "a share between 0 and 1")
_count = _number(int, "a whole number", lambda v: v >= 0, ">= 0")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None


def _global_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """``--config``, ``-q``, ``-v`` on the top parser (``top``: with the real defaults) and on
    every subcommand (defaults suppressed, so a value given before the subcommand stays)."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    p.add_argument(
        "--config",
        metavar="PATH",
        default=default(None),
        help=f"TOML config file (default: $INGEST_CONFIG, else ./{DEFAULT_CONFIG} if present)",
    )
    p.add_argument(
        "-q", "--quiet", action="count", default=default(0),
        help="log warnings and errors only (-qq: errors only)",
    )  # fmt: skip
    p.add_argument(
        "-v", "--verbose", action="count", default=default(0), help="log debug lines too"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Yahoo Finance quotes -> NATS JetStream, PostgreSQL and Redis.",
        epilog="Exit status: 0 ok, 1 failed, 2 bad input, 3 a service did not answer, "
        "4 a sink refused data, 130 interrupted (docs/errors.md).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(p, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, top=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def leaf(parent: Any, name: str, help_: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(name, help=help_, parents=[common])
        return parser

    def group(name: str, help_: str, dest: str) -> Any:
        g = sub.add_parser(name, help=help_, parents=[common])
        return g.add_subparsers(dest=dest, required=True, metavar="SUBCOMMAND")

    run = leaf(sub, "run", "run the engine until SIGTERM/SIGINT")
    run.add_argument("--once", action="store_true", help="run one cycle, print a summary, exit")
    run.add_argument(
        "--timeout", type=_positive_float, default=None, metavar="S",
        help="give up after this many seconds",
    )  # fmt: skip
    run.add_argument(
        "--min-fetched", type=_share, default=MIN_FETCHED_SHARE, metavar="SHARE",
        help="--once: exit 3 unless Yahoo answered for this share of the symbols "
        f"(default {MIN_FETCHED_SHARE})",
    )  # fmt: skip
    run.add_argument("--json", action="store_true", help="--once: the summary as one JSON line")

    symsub = group("symbols", "symbol universe tools", "symbols_command")
    check = leaf(symsub, "check", "validate a symbols file (JSON or CSV)")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--on-invalid", choices=get_args(OnInvalid), default=None)
    check.add_argument(
        "--limit", type=_count, default=20, metavar="N",
        help="show the first N problems (default 20; 0: all)",
    )  # fmt: skip
    check.add_argument("--json", action="store_true", help="print one JSON document")

    cfgsub = group("config", "configuration tools", "config_command")
    show = leaf(cfgsub, "show", "print the effective configuration (secrets redacted)")
    show.add_argument("--json", action="store_true", help="print one JSON document")
    leaf(cfgsub, "check", "validate the configuration (and the files it names) and exit")

    dlqsub = group("dlq", "dead-letter queue tools", "dlq_command")
    dl = leaf(dlqsub, "list", "show the newest dead letters")
    dl.add_argument("--limit", type=_count, default=20, metavar="N")
    dl.add_argument("--json", action="store_true", help="print one JSON document")
    dr = leaf(dlqsub, "replay", "re-drive dead letters (see docs/runbook.md)")
    dr.add_argument("--dry-run", action="store_true")
    for p_ in (dl, dr):
        p_.add_argument("--reason", help="only letters with this reason (e.g. price_out_of_range)")
        p_.add_argument("--symbol", help="only letters for this symbol")

    ernsub = group("earnings", "earnings calendar tools", "earnings_command")
    es = leaf(ernsub, "sync", "sync the earnings calendar now (table, flags, events, fundamentals)")
    es.add_argument(
        "--date", type=_date, default=None, metavar="YYYY-MM-DD",
        help="New York date to sync (default: today; flags/events only for today)",
    )  # fmt: skip

    dbsub = group("db", "database tools", "db_command")
    leaf(dbsub, "migrate", "create or migrate the market_data (and earnings_calendar) schema")
    dst = leaf(dbsub, "stats", "rows per day, partitions, oldest/newest quote, size")
    dst.add_argument("--json", action="store_true", help="print one JSON document")
    dm = leaf(dbsub, "maintain", "create partitions ahead and drop expired ones once (native)")
    dm.add_argument(
        "--date", type=_date, default=None, metavar="YYYY-MM-DD",
        help="UTC day to plan for (default: today)",
    )  # fmt: skip

    comp = leaf(sub, "completion", "print the shell completion script (bash, zsh or fish)")
    comp.add_argument("shell", choices=SHELLS)
    return p


def _config_path(arg: str | None) -> str | None:
    if arg:
        return arg
    env = os.environ.get("INGEST_CONFIG")
    if env:
        return env
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None


def _with_verbosity(loaded: LoadedConfig, args: argparse.Namespace) -> LoadedConfig:
    """``log.level`` moved down by ``-v`` and up by ``-q`` (every process of ``run`` logs at
    the configuration's level, so the configuration carries it)."""
    order: list[LogLevel] = ["DEBUG", "INFO", "WARNING", "ERROR"]
    log = loaded.config.log
    i = order.index(log.level) + args.quiet - args.verbose
    level = order[max(0, min(len(order) - 1, i))]
    if level == log.level:
        return loaded
    config = msgspec.structs.replace(loaded.config, log=msgspec.structs.replace(log, level=level))
    return dataclasses.replace(loaded, config=config)


def _arun(main: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(main)


async def _needing(
    config: Config, names: Sequence[Name], work: Callable[[], Awaitable[int]]
) -> int:
    """Probe the services ``names`` (bounded by ``cli.service_timeout_s``), then ``work()``."""
    from engine.deps.probe import require

    await require(config, names)
    return await work()


def _run(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    from engine.commands.run import run_command

    TIMER.mark("imports")
    if (args.json or args.min_fetched != MIN_FETCHED_SHARE) and not args.once:
        raise ConfigError("--json and --min-fetched apply to run --once only", key="--once")
    return _arun(
        run_command(
            config, out, once=args.once, timeout_s=args.timeout, min_fetched=args.min_fetched,
            fmt="json" if args.json else "text",
        )
    )  # fmt: skip


def _db(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    import engine.commands.db as dbcli

    s = config.postgres
    if args.db_command == "migrate":
        earnings = config.earnings.table if config.earnings.enabled else None
        work = lambda: dbcli.migrate_command(s, out, earnings_table=earnings)  # noqa: E731
    elif args.db_command == "maintain":
        work = lambda: dbcli.maintain_command(s, out, today=args.date)  # noqa: E731
    else:
        fmt: Format = "json" if args.json else "text"
        work = lambda: dbcli.stats_command(s, out, fmt=fmt)  # noqa: E731
    if not s.enabled:
        raise ConfigError("db commands need [postgres] enabled = true", key="postgres.enabled")
    return _arun(_needing(config, ["postgres"], work))


def _dlq(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    from engine.commands import dlq

    if args.dlq_command == "list":
        fmt: Format = "json" if args.json else "text"

        def listing() -> Awaitable[int]:
            return dlq.list_command(
                config, out, limit=args.limit, reason=args.reason, symbol=args.symbol, fmt=fmt
            )

        return _arun(_needing(config, ["nats"], listing))

    def replay() -> Awaitable[int]:
        return dlq.replay_command(
            config, out, reason=args.reason, symbol=args.symbol, dry_run=args.dry_run
        )

    needs: list[Name] = ["nats"] if args.dry_run else ["nats", "postgres"]
    return _arun(_needing(config, needs, replay))


def _earnings(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    from engine.commands.earnings import sync_command

    def sync() -> Awaitable[int]:
        return sync_command(config, args.date, out)

    return _arun(_needing(config, ["nats", "postgres", "redis"], sync))


def _symbols(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    from engine.commands import symbols

    mode = args.on_invalid or config.symbols.on_invalid
    return symbols.check_command(
        args.file, mode, out, config=config, limit=args.limit, fmt="json" if args.json else "text"
    )


def _config(loaded: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    from engine.commands import config as config_cmd

    if args.config_command == "show":
        return config_cmd.show_command(loaded, out, fmt="json" if args.json else "text")
    return config_cmd.check_command(loaded, out)


def _dispatch(loaded: LoadedConfig, args: argparse.Namespace, out: TextIO) -> int:
    config = loaded.config
    if args.command == "run":
        return _run(config, args, out)
    if args.command == "symbols":
        return _symbols(config, args, out)
    if args.command == "config":
        return _config(loaded, args, out)
    if args.command == "db":
        return _db(config, args, out)
    if args.command == "dlq":
        return _dlq(config, args, out)
    return _earnings(config, args, out)


def _fail(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    TIMER.mark("imports")
    parser = build_parser()
    argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    out = pipe_safe(sys.stdout)
    try:
        if args.command == "completion":
            out.write(shellcode([PROG], shell=args.shell))
            return ExitCode.OK
        loaded = _with_verbosity(load(_config_path(args.config)), args)
        logs.setup(loaded.config.log.level, loaded.config.log.format)
        TIMER.mark("config")
        return int(_dispatch(loaded, args, out))
    except (ConfigError, SymbolsError) as exc:
        _fail(str(exc))
        return ExitCode.USAGE
    except ServiceUnavailableError as exc:
        _fail(str(exc))
        return ExitCode.UNAVAILABLE
    except IngestionError as exc:
        _fail(f"{type(exc).__name__}: {exc}")
        return ExitCode.FAILED
    except (KeyboardInterrupt, asyncio.CancelledError):
        _fail("interrupted")
        return ExitCode.INTERRUPTED
    finally:
        out.flush()
        logging.shutdown()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
