"""``ingestion-agent config show|check``: the effective configuration and where it came from,
or whether it is usable.

``check`` goes beyond what loading checks (every value's type, range and form): the files and
names a setting refers to must exist - the symbols file, and the exchange calendar of the
earnings job. :func:`reference_problems` is shared with ``run``, which refuses to start on them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TextIO

import orjson

from engine.commands.exitcodes import ExitCode
from engine.commands.output import write_json
from engine.config import Config, LoadedConfig, describe, env_name
from engine.errors import ConfigError


def _symbols_file_problem(config: Config) -> ConfigError | None:
    f = config.symbols.file
    p = Path(f)
    key = "symbols.file"
    where = f"{key} = {f!r} ({env_name(key)})"
    if not p.exists():
        why = "does not exist"
    elif not p.is_file():
        why = "is not a file"
    elif not os.access(p, os.R_OK):
        why = "cannot be read by this user"
    else:
        return None
    return ConfigError(
        f"invalid configuration: {where} {why} (relative to {Path.cwd()}): name a JSON or CSV "
        "file of symbols; check it with `ingestion-agent symbols check FILE`",
        key=key,
    )


def _calendar_problem(config: Config) -> ConfigError | None:
    if not config.earnings.enabled:
        return None
    from engine.earnings.schedule import calendar_names

    name = config.earnings.exchange_calendar
    names = calendar_names()
    if name in names:
        return None
    key = "earnings.exchange_calendar"
    shown = ", ".join(sorted(n for n in names if n.isupper() and len(n) == 4)[:12])
    return ConfigError(
        f"invalid configuration: {key} = {name!r} ({env_name(key)}) is not an exchange "
        f"calendar; allowed: an exchange_calendars name such as XNYS, XNAS ({shown}, ...)",
        key=key,
    )


def reference_problems(config: Config, *, calendar: bool = True) -> list[ConfigError]:
    """What the settings name that does not exist: the symbols file, the exchange calendar
    (``calendar``: checked only where the earnings job runs; it imports pandas, ~1 s)."""
    found = [_symbols_file_problem(config)]
    if calendar:
        found.append(_calendar_problem(config))
    return [p for p in found if p is not None]


def check_command(loaded: LoadedConfig, out: TextIO) -> int:
    """The configuration loaded (bad values stop earlier, in ``load``); check what it names."""
    problems = reference_problems(loaded.config)
    if problems:
        raise problems[0]
    print(f"configuration OK ({_sources(loaded)})", file=out)
    return ExitCode.OK


def _sources(loaded: LoadedConfig) -> str:
    file = f"file {loaded.file}" if loaded.file else "no file (defaults)"
    env = ", ".join(sorted(set(loaded.env.values()))) or "none"
    return f"{file}; environment: {env}"


def show_command(
    loaded: LoadedConfig, out: TextIO, *, fmt: Literal["text", "json"] = "text"
) -> int:
    """Print the effective configuration, secrets redacted, saying which file and which
    environment variables set it."""
    doc = describe(loaded.config)
    if fmt == "json":
        write_json(
            out,
            {
                "file": str(loaded.file) if loaded.file else None,
                "environment": sorted(set(loaded.env.values())),
                "config": doc,
            },
        )
        return ExitCode.OK
    out.write(f"# {_sources(loaded)}\n")
    for section, values in doc.items():
        out.write(f"\n[{section}]\n")
        for key, value in values.items():
            origin = loaded.env.get(f"{section}.{key}")
            note = f"  # {origin}" if origin else ""
            out.write(f"{key} = {_toml(value)}{note}\n")
    return ExitCode.OK


def _toml(value: Any) -> str:
    """A value as TOML writes it (strings, numbers, booleans and lists of them are JSON-alike)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()
