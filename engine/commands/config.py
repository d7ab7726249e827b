"""``ingestion-agent config show|check``: the effective configuration, or that it is valid."""

from __future__ import annotations

from typing import TextIO

import orjson

from engine.config import Config, describe


def show_command(config: Config, out: TextIO) -> int:
    """Print the effective configuration as JSON, secrets redacted."""
    out.write(orjson.dumps(describe(config), option=orjson.OPT_INDENT_2).decode())
    out.write("\n")
    return 0


def check_command(config: Config, out: TextIO) -> int:
    """The configuration loaded (errors stop earlier, in ``load_config``): say so."""
    print("configuration OK", file=out)
    return 0
