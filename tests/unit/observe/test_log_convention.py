"""Every log call of the engine follows the convention of ``engine.observe.logs``.

The message is the event name (a snake_case string literal: no ``%`` arguments, no f-string,
no sentence) and ``extra`` is the context, so it never names the event itself. A failure's
class name or ``.kind`` goes in ``error_kind``; ``error`` is the exception's text.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[3] / "engine"
LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _is_logger(node: ast.expr) -> bool:
    """``log``, ``logger``, ``*log`` (``_log``, ``self.log``, ``self._log``...)."""
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Attribute):
        name = node.attr
    else:
        return False
    return name in ("log", "logger") or name.endswith("log")


def _extra(call: ast.Call) -> dict[str, ast.expr]:
    """The string keys of an ``extra={...}`` dict literal and their values."""
    for kw in call.keywords:
        if kw.arg == "extra" and isinstance(kw.value, ast.Dict):
            return {
                k.value: v
                for k, v in zip(kw.value.keys, kw.value.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)
            }
    return {}


def _is_error_kind(value: ast.expr) -> bool:
    """``type(exc).__name__``, ``exc.kind``: a kind, which belongs in ``error_kind``."""
    return isinstance(value, ast.Attribute) and value.attr in ("__name__", "kind")


def violations(source: str, filename: str) -> list[str]:
    out: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr in LEVELS or node.func.attr == "log")
            and _is_logger(node.func.value)
        ):
            continue
        where = f"{filename}:{node.lineno}"
        args = node.args[1:] if node.func.attr == "log" else node.args  # log.log(level, ...)
        first = args[0] if args else None
        if not (
            isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and EVENT_NAME.fullmatch(first.value)
        ):
            shown = ast.unparse(first) if first is not None else "<no message>"
            out.append(f"{where}: message is not an event name: {shown}")
        if len(args) > 1:
            out.append(f"{where}: %-arguments after the event name")
        extra = _extra(node)
        if "event" in extra:
            out.append(f'{where}: extra names the event ("event" key)')
        if "error" in extra and _is_error_kind(extra["error"]):
            out.append(f'{where}: a kind in "error" (belongs in "error_kind")')
    return out


def test_the_checker_catches_each_breach() -> None:
    bad = "\n".join(
        [
            'log.info("Connected to %s", host)',
            'logger.warning(f"lost {n}")',
            'self._log.error("pg_down", extra={"event": "pg_down"})',
            "log.debug(name)",
            'log.info("Not_snake")',
            "log.log(level, state.event)",
            'log.warning("x_failed", extra={"error": type(exc).__name__})',
            'log.warning("x_failed", extra={"error": exc.kind})',
        ]
    )
    found = violations(bad, "x.py")
    assert [v.split(":")[1] for v in found] == ["1", "1", "2", "3", "4", "5", "6", "7", "8"]
    good = "\n".join(
        [
            'log.info("pg_recovered", extra={"down_s": 3})',
            'log.log(logging.INFO, "cycle_completed", extra=fields)',
            'log.warning("x_failed", extra={"error_kind": exc.kind, "error": str(exc)[:300]})',
            'print("A sentence")',
            'x.info("Hi")',
        ]
    )
    assert violations(good, "y.py") == []


def test_every_engine_log_call_follows_the_convention() -> None:
    files = sorted(ENGINE.rglob("*.py"))
    assert files, ENGINE
    found = [
        v
        for path in files
        for v in violations(path.read_text(), str(path.relative_to(ENGINE.parent)))
    ]
    assert found == [], "\n".join(found)
