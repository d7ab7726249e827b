"""Structured logging: one convention, rendered as JSON lines or as readable console lines.

The convention (every log call of the engine)::

    log.warning("batch_failed", extra={"cycle": 7, "symbols": 50, "error_kind": "Timeout"})

- The message is the **event name**: a stable snake_case constant (``^[a-z][a-z0-9_]*$``), no
  ``%`` arguments, no f-string. It is what dashboards and log queries match on.
- ``extra`` is the **context**: snake_case keys, plain values (numbers, short strings, bools).
  A failure is described by ``error_kind`` (the exception's class name or ``UpstreamError.kind``:
  a bounded set) and, when the text helps, ``error`` (``str(exc)``, truncated). Keys must not be
  the names the formatter writes (``ts``, ``level``, ``event``, ``logger``, ``msg``, ``exc``,
  ``stack``); a context key that collides gets a trailing ``_``.
- Context that applies to everything a task or process logs (process role, worker id, cycle) is
  bound once with :func:`bind` (contextvars) and added to every line.
- Tracebacks: ``log.exception("event")`` or ``exc_info=exc``; rendered under ``exc``.

Both formatters render the same document (:func:`document`): ``ts``, ``level``, ``event``,
``logger``, then the context, then ``exc``. Nothing a record carries is dropped: a record
whose message is not an event name (a third-party library such as nats or aiohttp, or a call
that puts a human sentence in the message) keeps that text in a ``msg`` field; its event is
``extra["event"]`` if the call gave one, else ``log``. JSON lines carry the document as is;
the console shows ``time level event msg key=value ...``.

Secrets never reach a log line: configuration values are logged only through
``config.describe`` and :class:`engine.config.Secret` renders as ``***``; as a last guard, the
formatter masks every credential a DSN can carry (URL userinfo, ``?password=``, libpq
``password=...``: :func:`engine.configload.redact_url`) in every text it writes, and the value
of any context key that names a secret (``password``, ``token``, ...).
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from typing import Any, Final

import orjson

from engine.configload import redact_url

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "log_context", default=None
)

_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)
RESERVED: Final = frozenset({"ts", "level", "event", "logger", "msg", "exc", "stack"})
"""Fields the formatter writes itself; a context key with one of these names gets a ``_``."""

UNSTRUCTURED_EVENT: Final = "log"
"""The event of a record that names none (third-party libraries)."""

_EVENT_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")
_SECRET_KEYS: Final = ("password", "passwd", "secret", "token", "api_key", "dsn")


def bind(**kv: Any) -> None:
    """Add context to every later log line of this task/process."""
    _context.set({**(_context.get() or {}), **kv})


def is_event_name(text: str) -> bool:
    """Whether ``text`` follows the event-name convention (snake_case, no spaces)."""
    return _EVENT_NAME.fullmatch(text) is not None


def redact(text: str) -> str:
    """Every credential in ``text`` masked: URL userinfo, secret query parameters and libpq
    keywords (``password=...``) - the one redaction, :func:`engine.configload.redact_url`."""
    return redact_url(text)


def _clean(key: str, value: Any) -> Any:
    """The value as written: masked if ``key`` names a secret, URL credentials redacted."""
    if any(s in key.lower() for s in _SECRET_KEYS):
        return "***"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(key, v) for v in value]
    return value  # numbers, enums, dates...: written by orjson, anything else as redacted str()


def _default(value: Any) -> str:
    return redact(str(value))


def _context_of(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = dict(_context.get() or {})
    for k, v in record.__dict__.items():
        if k not in _STANDARD and not k.startswith("_"):
            out[k] = v
    return out


def document(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """The one structured form of a record, shared by both formatters (see the module doc)."""
    fields = _context_of(record)
    message = redact(record.getMessage())
    named = fields.pop("event", None)
    if named is None and not record.args and is_event_name(message):
        event, msg = message, None
    else:
        event = UNSTRUCTURED_EVENT if named is None else str(named)
        msg = message
    doc: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "event": event,
        "logger": record.name,
    }
    if msg is not None:
        doc["msg"] = msg
    for k, v in fields.items():
        doc[f"{k}_" if k in RESERVED else k] = _clean(k, v)
    if record.exc_info:
        doc["exc"] = redact(formatter.formatException(record.exc_info))
    if record.stack_info:
        doc["stack"] = redact(formatter.formatStack(record.stack_info))
    return doc


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the :func:`document` of the record."""

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(document(record, self), default=_default).decode()


def _shown(value: Any) -> str:
    text = "" if value is None else redact(str(value))
    if not text or any(c.isspace() or c in '="' for c in text):
        return orjson.dumps(text).decode()
    return text


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS LEVL event msg key=value ...`` (local time), traceback below."""

    def format(self, record: logging.LogRecord) -> str:
        doc = document(record, self)
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        kv = " ".join(f"{k}={_shown(v)}" for k, v in doc.items() if k not in RESERVED)
        head = f"{doc['event']} {doc['msg']}" if "msg" in doc else doc["event"]
        line = f"{ts} {record.levelname[:4]:4} {head:24} {kv}".rstrip()
        for extra in ("exc", "stack"):
            if extra in doc:
                line += "\n" + doc[extra]
        return line


def setup(level: str = "INFO", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("asyncio", "nats", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
