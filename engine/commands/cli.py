"""``ingestion-agent`` command line: parse -> Config -> the supervisor or a one-shot tool.

Exit codes: 0 success; 1 the work failed (e.g. ``run --once`` whose cycle lost symbols);
2 bad input (configuration, symbols file, arguments) with a message naming the culprit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

import uvloop

from engine import __version__
from engine.config import Config, OnInvalid, load_config
from engine.errors import ConfigError, IngestionError, SymbolsError
from engine.observe import logs
from engine.runtime.startup import TIMER

DEFAULT_CONFIG = "config.toml"


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return v


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ingestion-agent",
        description="Yahoo Finance quotes -> NATS JetStream, PostgreSQL and Redis.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--config",
        default=os.environ.get("INGEST_CONFIG"),
        help=f"TOML config file (default: $INGEST_CONFIG, else ./{DEFAULT_CONFIG} if present)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the engine until SIGTERM/SIGINT")
    run.add_argument("--once", action="store_true", help="run one cycle, print a summary, exit")
    run.add_argument(
        "--timeout", type=_positive_float, default=None, help="give up after this many seconds"
    )

    sym = sub.add_parser("symbols", help="symbol universe tools")
    symsub = sym.add_subparsers(dest="symbols_command", required=True)
    check = symsub.add_parser("check", help="validate a symbols file (JSON or CSV)")
    check.add_argument("file")
    check.add_argument("--on-invalid", choices=get_args(OnInvalid), default=None)

    cfg = sub.add_parser("config", help="configuration tools")
    cfgsub = cfg.add_subparsers(dest="config_command", required=True)
    cfgsub.add_parser("show", help="print the effective configuration (secrets redacted)")
    cfgsub.add_parser("check", help="validate the configuration and exit")

    dlq = sub.add_parser("dlq", help="dead-letter queue tools")
    dlqsub = dlq.add_subparsers(dest="dlq_command", required=True)
    dl = dlqsub.add_parser("list", help="show the newest dead letters")
    dl.add_argument("--limit", type=int, default=20)
    dr = dlqsub.add_parser("replay", help="re-drive dead letters (see docs/runbook.md)")
    dr.add_argument("--dry-run", action="store_true")
    for p_ in (dl, dr):
        p_.add_argument("--reason", help="only letters with this reason (e.g. price_out_of_range)")
        p_.add_argument("--symbol", help="only letters for this symbol")

    ern = sub.add_parser("earnings", help="earnings calendar tools")
    ernsub = ern.add_subparsers(dest="earnings_command", required=True)
    es = ernsub.add_parser(
        "sync", help="sync the earnings calendar now (table, flags, events, fundamentals)"
    )
    es.add_argument(
        "--date",
        type=_date,
        default=None,
        help="New York date YYYY-MM-DD to sync (default: today; flags/events only for today)",
    )

    db = sub.add_parser("db", help="database tools")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser(
        "migrate", help="create or migrate the market_data (and earnings_calendar) schema"
    )
    dst = dbsub.add_parser("stats", help="rows per day, partitions, oldest/newest quote, size")
    dst.add_argument("--json", action="store_true", help="print one JSON document")
    dm = dbsub.add_parser(
        "maintain", help="create partitions ahead and drop expired ones once (native mode)"
    )
    dm.add_argument(
        "--date", type=_date, default=None, help="UTC day YYYY-MM-DD to plan for (default: today)"
    )
    return p


def _config_path(arg: str | None) -> str | None:
    if arg:
        return arg
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None


def _run(config: Config, args: argparse.Namespace) -> int:
    from engine.supervisor import run_engine

    TIMER.mark("imports")

    return uvloop.run(run_engine(config, once=args.once, timeout_s=args.timeout))


def _db(config: Config, args: argparse.Namespace) -> int:
    import engine.commands.db as dbcli

    if args.db_command == "migrate":
        earnings = config.earnings.table if config.earnings.enabled else None
        return uvloop.run(
            dbcli.migrate_command(config.postgres, sys.stdout, earnings_table=earnings)
        )
    if args.db_command == "maintain":
        return uvloop.run(dbcli.maintain_command(config.postgres, sys.stdout, today=args.date))
    return uvloop.run(
        dbcli.stats_command(config.postgres, sys.stdout, fmt="json" if args.json else "text")
    )


def _dlq(config: Config, args: argparse.Namespace) -> int:
    from engine.commands import dlq

    if args.dlq_command == "list":
        return uvloop.run(
            dlq.list_command(
                config, sys.stdout, limit=args.limit, reason=args.reason, symbol=args.symbol
            )
        )
    return uvloop.run(
        dlq.replay_command(
            config, sys.stdout, reason=args.reason, symbol=args.symbol, dry_run=args.dry_run
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    TIMER.mark("imports")
    args = build_parser().parse_args(argv)
    try:
        config = load_config(_config_path(args.config))
        logs.setup(config.log.level, config.log.format)
        TIMER.mark("config")
        if args.command == "run":
            return _run(config, args)
        if args.command == "symbols":
            from engine.commands import symbols

            mode = args.on_invalid or config.symbols.on_invalid
            return symbols.check_command(
                args.file, mode, sys.stdout, n_shards=config.workers.shards
            )
        if args.command == "config":
            from engine.commands import config as config_cmd

            if args.config_command == "show":
                return config_cmd.show_command(config, sys.stdout)
            return config_cmd.check_command(config, sys.stdout)
        if args.command == "db":
            return _db(config, args)
        if args.command == "dlq":
            return _dlq(config, args)
        if args.command == "earnings":
            from engine.commands.earnings import sync_command

            return uvloop.run(sync_command(config, args.date, sys.stdout))
    except (ConfigError, SymbolsError) as exc:
        print(f"ingestion-agent: {exc}", file=sys.stderr)
        return 2
    except IngestionError as exc:
        print(f"ingestion-agent: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
