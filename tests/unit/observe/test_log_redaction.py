"""No DSN password, in any form, reaches a JSON log line (message, context or traceback)."""

from __future__ import annotations

import logging

import orjson
import pytest

from engine.observe import logs
from tests.unit.test_config import DSN_FORMS, PASSWORD


def _line(record: logging.LogRecord) -> str:
    return logs.JsonFormatter().format(record)


@pytest.mark.parametrize("form", sorted(DSN_FORMS))
def test_json_line_hides_password(form: str) -> None:
    dsn = DSN_FORMS[form]
    try:
        raise RuntimeError(f"cannot connect to {dsn}")
    except RuntimeError as exc:
        err = exc
    record = logging.LogRecord("t", logging.ERROR, "f", 1, "store_failed", None, None)
    record.__dict__.update({"error": str(err), "target": dsn, "error_kind": "RuntimeError"})
    record.exc_info = (type(err), err, err.__traceback__)
    line = _line(record)
    assert PASSWORD not in line
    assert orjson.loads(line)["event"] == "store_failed"
    text = logging.LogRecord("t", logging.ERROR, "f", 1, f"boom {dsn}", None, None)
    assert PASSWORD not in _line(text)
