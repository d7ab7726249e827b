#!/usr/bin/env python3
"""Generate ``schemas/*.schema.json``: one JSON Schema per NATS subject the engine publishes.

The schemas are derived from the msgspec Structs that encode the messages
(``msgspec.json.schema``), then turned from a *decoder's* view into a *message* view:

* every field is ``required`` (the encoders never omit a field, defaults included; the script
  refuses a Struct with ``omit_defaults=True``);
* ``T | None`` becomes ``{"type": [T, "null"]}`` and msgspec's ``default`` is dropped;
* refinements taken from the code's own constants: ``schema_version`` is a ``const``
  (``SCHEMA_VERSION``), market states, reject reasons, earnings timings and sources are enums,
  timestamps get a pattern, correlation ids ``format: uuid``;
* a description per field (:data:`DESCRIPTIONS`; a field without one is an error, so a new
  field cannot ship undocumented).

``additionalProperties`` is left open on purpose: within one ``schema_version`` the engine may
add fields, and consumers must ignore fields they do not know (docs/messages.md).

Usage::

    .venv/bin/python scripts/gen_schemas.py           # (re)write the files
    .venv/bin/python scripts/gen_schemas.py --check   # exit 1 if a committed file differs

tests/unit/test_message_schemas.py runs the check, so the files cannot drift from the code.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from engine import quote  # noqa: E402
from engine.config import EarningsSettings, NatsSettings  # noqa: E402
from engine.earnings import models as earnings_models  # noqa: E402
from engine.earnings import publish as earnings_publish  # noqa: E402

SCHEMA_DIR: Final = ROOT / "schemas"
ID_BASE: Final = "https://ingestion-agent.local/schemas/"
DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"

UNPUBLISHABLE_REASON: Final = "jetstream_rejected"
"""``reason`` of ``kind = "unpublishable"`` dead letters (``engine.records.unpublishable``)."""

ISO_SECONDS: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
ISO_MICROS: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
RFC3339: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"  # date and time
    r"(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"  # fraction, offset
)


@dataclass(frozen=True)
class Subject:
    """One published subject: the Struct of its payload and where it goes."""

    file_stem: str
    struct: type[msgspec.Struct]
    version: int
    subject: str
    stream: str
    msg_id: str
    title: str
    description: str

    @property
    def file_name(self) -> str:
        return f"{self.file_stem}.v{self.version}.schema.json"


_nats = NatsSettings()
_earn = EarningsSettings()

SUBJECTS: Final = (
    Subject(
        file_stem="market_quote",
        struct=quote.QuoteMessage,
        version=quote.SCHEMA_VERSION,
        subject=_nats.subject,
        stream=_nats.stream,
        msg_id="{symbol}:{market_time}:{volume}",
        title=f"{_nats.subject} message, schema_version {quote.SCHEMA_VERSION}",
        description=(
            "One validated real-time quote, published by ingestion-agent's publisher "
            "(engine/quote.py QuoteMessage). The same JSON document is the value of the Redis key "
            "market:{SYMBOL}. Header Nats-Msg-Id = '{symbol}:{market_time}:{volume}': the same "
            "quote is the same message, deduplicated by JetStream (a volume that grew at the same "
            "market time is a new message). Consumers must ignore unknown fields."
        ),
    ),
    Subject(
        file_stem="market_dlq",
        struct=quote.DlqMessage,
        version=quote.SCHEMA_VERSION,
        subject=_nats.dlq_subject,
        stream=_nats.dlq_stream,
        msg_id=(
            "rejected: '{symbol}:{reason}:{market_time}' "
            "('{symbol}:{reason}:i{ingest epoch second}' when the quote had no market time); "
            "unpublishable: 'unpublishable:{original Nats-Msg-Id}'"
        ),
        title=f"{_nats.dlq_subject} message, schema_version {quote.SCHEMA_VERSION}",
        description=(
            "A dead letter (engine/quote.py DlqMessage). kind 'rejected': a quote that failed "
            "validation, with the fields Yahoo sent (null where absent) and the reason. kind "
            "'unpublishable': JetStream refused a message itself; original, original_subject and "
            "original_msg_id hold it verbatim for 'ingestion-agent dlq replay'. Consumers must "
            "ignore unknown fields."
        ),
    ),
    Subject(
        file_stem="earnings_reported",
        struct=earnings_publish.EarningsMessage,
        version=earnings_publish.SCHEMA_VERSION,
        subject=_earn.subject,
        stream=_earn.stream,
        msg_id="earnings:{kind}:{symbol}:{event_date}",
        title=f"{_earn.subject} message, schema_version {earnings_publish.SCHEMA_VERSION}",
        description=(
            "Published by ingestion-agent's earnings sync (engine/earnings/publish.py "
            "EarningsMessage). kind 'reporting_today': the symbol reports on event_date, the New "
            "York date of the sync (sent once per symbol and date). kind 'eps_reported': the "
            "reported EPS appeared (sent once per symbol and date). Header Nats-Msg-Id = "
            "'earnings:{kind}:{symbol}:{event_date}'. Numbers are null when unknown. Consumers "
            "must ignore unknown fields."
        ),
    ),
)

_COMMON: Final[Mapping[str, str]] = {
    "schema_version": "Version of this document's layout; bumped only on a breaking change.",
    "symbol": "Yahoo symbol, upper case (e.g. AAPL, BRK-B).",
    "source": "Where the data came from.",
    "cycle": "Engine cycle number (restarts at 1 with every engine start).",
    "correlation_id": "UUID4 minted per record by the worker; also in the engine's logs.",
}

DESCRIPTIONS: Final[Mapping[type[msgspec.Struct], Mapping[str, str]]] = {
    quote.QuoteMessage: {
        **_COMMON,
        "source": "Where the quote came from: 'yahoo_v7' (the v7 quote API).",
        "price": "regularMarketPrice, in `currency` units; > 0 and plausible against the "
        "quote's own reference (docs/errors.md, Plausible prices).",
        "volume": "regularMarketVolume (shares traded in the regular session), >= 0.",
        "change_percent": "regularMarketChangePercent in percent (1.5 = +1.5 %); null if absent.",
        "timestamp": "The quote's market time, ISO-8601 UTC to the second.",
        "market_time": "The same instant as `timestamp`, Unix epoch seconds.",
        "currency": "ISO 4217 currency code as Yahoo sends it (e.g. USD); null if absent.",
        "exchange": "Yahoo exchange code (e.g. NMS, NYQ); null if absent.",
        "market_state": "Yahoo marketState when the quote was fetched.",
        "ingest_time": "When the engine fetched the quote, ISO-8601 UTC with microseconds.",
        "stale": "True when the quote is older than validation.max_age_regular_s outside "
        "regular hours (expected then; still published).",
    },
    quote.DlqMessage: {
        **_COMMON,
        "source": "'yahoo_v7' for rejected quotes; 'engine' for unpublishable messages.",
        "kind": "'rejected' (failed validation) or 'unpublishable' (refused by JetStream).",
        "reason": "Rejection reason (docs/errors.md) or 'jetstream_rejected'.",
        "detail": "Human-readable detail of the reason (e.g. the offending value).",
        "market_time": "regularMarketTime as Yahoo sent it (epoch s); null if absent.",
        "price": "regularMarketPrice as Yahoo sent it; null if absent or not finite.",
        "ingest_time": "When the engine fetched the quote (or dead-lettered the message), "
        "ISO-8601 UTC with microseconds.",
        "volume": "regularMarketVolume as Yahoo sent it; null if absent.",
        "change_percent": "regularMarketChangePercent as Yahoo sent it; null if absent.",
        "market_state": "marketState as Yahoo sent it; null if absent or unknown.",
        "currency": "currency as Yahoo sent it; null if absent.",
        "exchange": "exchange as Yahoo sent it; null if absent.",
        "original_subject": "unpublishable only: the subject the message was meant for.",
        "original_msg_id": "unpublishable only: the message's own Nats-Msg-Id.",
        "original": "unpublishable only: the message's payload, verbatim (JSON text).",
    },
    earnings_publish.EarningsMessage: {
        **_COMMON,
        "kind": "'reporting_today' or 'eps_reported'.",
        "event_date": "New York date of the report.",
        "event_time": "Start of the event, UTC (RFC 3339); a placeholder when timing is TMC.",
        "timing": "BMO before market open, AMC after market close, DMH during market hours, "
        "TMC time not confirmed.",
        "company_name": "Company name from the calendar; null if unknown.",
        "event_name": "e.g. 'Q3 2026 Earnings Release'; null if unknown.",
        "eps_estimate": "Consensus EPS estimate, USD; null if unknown.",
        "eps_reported": "Reported EPS, USD; null until reported.",
        "surprise_pct": "(reported - estimate) / |estimate| in percent; null until reported.",
        "sync_date": "New York date of the sync that sent the message.",
        "emitted_at": "When the sync built the message, UTC.",
        "source": "'yahoo_calendar' (the visualization calendar) or 'yahoo_quotesummary' "
        "(the calendarEvents fallback).",
    },
}


def _refinements(sub: Subject) -> dict[str, dict[str, Any]]:
    """Constraints msgspec cannot see (the field is a ``str``/``int``), from the code."""
    states = list(quote.MARKET_STATES)
    common: dict[str, dict[str, Any]] = {
        "schema_version": {"const": sub.version},
        "symbol": {"minLength": 1},
    }
    if sub.struct is quote.QuoteMessage:
        return {
            **common,
            "correlation_id": {"format": "uuid"},
            "cycle": {"minimum": 0},
            "market_state": {"enum": states},
            "timestamp": {"pattern": ISO_SECONDS},
            "ingest_time": {"pattern": ISO_MICROS},
            "price": {"exclusiveMinimum": 0},
            "volume": {"minimum": 0},
            "market_time": {"minimum": 0},
        }
    if sub.struct is quote.DlqMessage:
        reasons = [r.label for r in quote.RejectReason] + [UNPUBLISHABLE_REASON]
        return {
            **common,
            "correlation_id": {"format": "uuid"},
            "cycle": {"minimum": 0},
            "reason": {"enum": reasons},
            "market_state": {"enum": [*states, None]},
            "ingest_time": {"pattern": ISO_MICROS},
        }
    if sub.struct is earnings_publish.EarningsMessage:
        return {
            **common,
            "timing": {"enum": list(typing.get_args(earnings_models.Timing))},
            "source": {
                "enum": [earnings_models.SOURCE_CALENDAR, earnings_models.SOURCE_QUOTE_SUMMARY]
            },
            "event_time": {"format": "date-time", "pattern": RFC3339},
            "emitted_at": {"format": "date-time", "pattern": RFC3339},
        }
    raise ValueError(f"no refinements defined for {sub.struct.__name__}")


def _flatten_nullable(spec: dict[str, Any]) -> dict[str, Any]:
    """``{"anyOf": [{"type": T}, {"type": "null"}]}`` -> ``{"type": [T, "null"]}``."""
    alts = spec.get("anyOf")
    if not alts or not all(set(a) == {"type"} and isinstance(a["type"], str) for a in alts):
        return spec
    out = {k: v for k, v in spec.items() if k != "anyOf"}
    out["type"] = [a["type"] for a in alts]
    return out


def build(sub: Subject) -> dict[str, Any]:
    """The schema document of one subject."""
    if sub.struct.__struct_config__.omit_defaults:
        raise ValueError(f"{sub.struct.__name__} omits defaults: fields would not be required")
    raw = msgspec.json.schema(sub.struct)
    body = raw["$defs"][sub.struct.__name__]
    descriptions = DESCRIPTIONS[sub.struct]
    refine = _refinements(sub)
    props: dict[str, Any] = {}
    for name, spec in body["properties"].items():
        if name not in descriptions:
            raise ValueError(
                f"{sub.struct.__name__}.{name} has no description: add it to DESCRIPTIONS in "
                "scripts/gen_schemas.py (and to docs/messages.md)"
            )
        spec = _flatten_nullable({k: v for k, v in spec.items() if k != "default"})
        extra = refine.get(name, {})
        if "const" in extra or "enum" in extra:  # the value set says it all
            spec = {k: v for k, v in spec.items() if k not in ("type", "enum")}
        props[name] = {**spec, **extra, "description": descriptions[name]}
    unknown = set(refine) - set(props)
    if unknown:
        raise ValueError(f"refinements for fields {sorted(unknown)} not in {sub.struct.__name__}")
    return {
        "$schema": DRAFT,
        "$id": ID_BASE + sub.file_name,
        "title": sub.title,
        "description": sub.description,
        "x-subject": sub.subject,
        "x-stream": sub.stream,
        "x-nats-msg-id": sub.msg_id,
        "type": "object",
        "required": list(props),
        "properties": props,
    }


def render(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[Path, str]:
    """Every schema file and the text it must have."""
    return {SCHEMA_DIR / s.file_name: render(build(s)) for s in SUBJECTS}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--check", action="store_true", help="exit 1 if a file differs; write nothing")
    args = p.parse_args(argv)
    stale = []
    for path, text in expected_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"out of date: {names}; run scripts/gen_schemas.py", file=sys.stderr)
        return 1
    if not stale:
        print("schemas up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
