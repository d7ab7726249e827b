"""engine.observe.logs: one structured convention; JSON keeps event, message and fields; the
console is readable; secrets never appear."""

from __future__ import annotations

import contextvars
import enum
import logging
import sys

import orjson
import pytest

from engine.config import Config, Secret
from engine.observe import logs

SECRET = "s3cr3t-pa55"
DSN = f"postgresql://ingest:{SECRET}@db.internal:5432/quotes"


def _record(
    msg: str,
    *args: object,
    level: int = logging.INFO,
    exc: bool = False,
    **extra: object,
) -> logging.LogRecord:
    logger = logging.getLogger("engine.test")
    exc_info = None
    if exc:
        try:
            raise ConnectionRefusedError(f"cannot reach {DSN}")
        except ConnectionRefusedError:
            exc_info = sys.exc_info()
    return logger.makeRecord(
        logger.name, level, __file__, 1, msg, args, exc_info, extra=dict(extra) or None
    )


def _json(record: logging.LogRecord) -> dict[str, object]:
    doc: dict[str, object] = orjson.loads(logs.JsonFormatter().format(record))
    return doc


def _console(record: logging.LogRecord) -> str:
    return logs.ConsoleFormatter().format(record)


@pytest.fixture(autouse=True)
def fresh_context() -> None:
    logs._context.set(None)


def test_event_name_is_the_message_and_extra_the_context() -> None:
    doc = _json(_record("batch_failed", level=logging.WARNING, cycle=7, error_kind="Timeout"))
    assert doc["event"] == "batch_failed"
    assert doc["level"] == "warning"
    assert doc["logger"] == "engine.test"
    assert doc["cycle"] == 7 and doc["error_kind"] == "Timeout"
    assert "msg" not in doc
    assert str(doc["ts"]).endswith("Z")


def test_a_human_message_is_kept_next_to_the_event() -> None:
    # the other style (a sentence as the message, the event in extra) loses nothing
    rec = _record("Redis unavailable; writes kept", event="redis_unavailable", keys=3)
    doc = _json(rec)
    assert doc["event"] == "redis_unavailable"
    assert doc["msg"] == "Redis unavailable; writes kept"
    assert doc["keys"] == 3


def test_a_library_message_is_kept_with_its_arguments() -> None:
    doc = _json(_record("Reconnecting in %d s", 2))
    assert doc["event"] == logs.UNSTRUCTURED_EVENT
    assert doc["msg"] == "Reconnecting in 2 s"
    assert _json(_record("%s", "ready"))["msg"] == "ready"  # arguments: never an event name


def test_bound_context_is_on_every_line() -> None:
    def run() -> dict[str, object]:
        logs.bind(role="worker", worker=2)
        logs.bind(cycle=9)
        return _json(_record("cycle_started"))

    doc = contextvars.copy_context().run(run)
    assert (doc["role"], doc["worker"], doc["cycle"]) == ("worker", 2, 9)
    assert "role" not in _json(_record("cycle_started"))


def test_reserved_names_in_the_context_do_not_overwrite_the_document() -> None:
    doc = _json(_record("x_happened", level_="n/a", ts_="n/a"))
    assert doc["level"] == "info"
    doc = _json(_record("x_happened", logger="mine", stack="mine"))
    assert doc["logger"] == "engine.test"
    assert doc["logger_"] == "mine" and doc["stack_"] == "mine"


def test_structured_values_stay_structured() -> None:
    class Color(enum.Enum):
        RED = "red"

    doc = _json(_record("stats", errors={"Timeout": 2}, symbols=["A", "B"], color=Color.RED))
    assert doc["errors"] == {"Timeout": 2}
    assert doc["symbols"] == ["A", "B"]
    assert doc["color"] == "red"


def test_exceptions_are_rendered() -> None:
    doc = _json(_record("task_failed", level=logging.ERROR, exc=True, task="drain-0"))
    assert "ConnectionRefusedError" in str(doc["exc"])
    line = _console(_record("task_failed", level=logging.ERROR, exc=True))
    assert "Traceback" in line and "ConnectionRefusedError" in line


def test_console_is_readable() -> None:
    line = _console(_record("batch_split", level=logging.WARNING, cycle=3, error="a b"))
    head, _, rest = line.partition(" ")
    assert len(head) == 8 and head.count(":") == 2  # HH:MM:SS
    assert rest.startswith("WARN batch_split")
    assert 'cycle=3 error="a b"' in rest
    line = _console(_record("Redis unavailable; writes kept", event="redis_unavailable"))
    assert "redis_unavailable Redis unavailable; writes kept" in line
    assert "event=" not in line


@pytest.mark.parametrize("render", [_json, _console])
def test_secrets_never_appear(render: object) -> None:
    assert callable(render)
    records = [
        _record("pg_connect_failed", error=f"could not connect to {DSN}"),
        _record("could not connect to %s", DSN),
        _record("store_failed", exc=True),
        _record("dsn_in_use", dsn=Secret(DSN), url=DSN, password=SECRET, api_token=SECRET),
        _record("config_loaded", nested={"postgres": {"dsn": DSN}, "hosts": [DSN]}),
        _record("config", described=logs_config()),
    ]
    for rec in records:
        text = str(render(rec))
        assert SECRET not in text, text
        assert "ingest:" not in text, text


def logs_config() -> object:
    from engine.config import describe

    return describe(Config())


def test_redact_masks_only_credentials() -> None:
    assert logs.redact(f"x {DSN} y") == "x postgresql://***@db.internal:5432/quotes y"
    assert logs.redact("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
    assert logs.is_event_name("quote_rejected")
    assert not logs.is_event_name("Quote rejected")


def test_setup_installs_one_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    try:
        logs.setup("DEBUG", "json")
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        logs.setup("INFO", "console")
        assert isinstance(root.handlers[0].formatter, logs.ConsoleFormatter)
        assert logging.getLogger("nats").level == logging.WARNING
    finally:
        root.handlers[:] = before
        root.setLevel(level)
