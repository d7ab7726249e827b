"""schemas/*.schema.json: generated from the msgspec Structs, and what the encoders produce.

The committed files must be exactly what scripts/gen_schemas.py generates (so a change to a
message Struct without regenerating fails here), and messages built by the engine's own encoding
path (ring records -> payloads, dead letters, earnings messages) must validate against them.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import msgspec
import pytest

from engine.earnings.models import SOURCE_QUOTE_SUMMARY, EarningsEvent
from engine.earnings.publish import build_message, message_id
from engine.quote import MARKET_STATES, Quote, Rejection, RejectReason
from engine.records import OutMessage, encode_dlq, to_messages, to_records, unpublishable
from testkit import load_script

ROOT = Path(__file__).resolve().parents[2]
T = 1_764_000_000


def _load_generator() -> ModuleType:
    return load_script(ROOT / "scripts" / "gen_schemas.py", "gen_schemas")


gen = _load_generator()


def schema(stem: str) -> dict[str, Any]:
    (sub,) = [s for s in gen.SUBJECTS if s.file_stem == stem]
    doc: dict[str, Any] = json.loads((ROOT / "schemas" / sub.file_name).read_text())
    return doc


def validator(stem: str) -> jsonschema.protocols.Validator:
    doc = schema(stem)
    cls = jsonschema.validators.validator_for(doc)
    cls.check_schema(doc)
    return cls(doc, format_checker=jsonschema.FormatChecker())


def errors(stem: str, msg: Any) -> list[str]:
    return [e.message for e in validator(stem).iter_errors(msg)]


def quote(sym: str = "BRK-B", **kw: Any) -> Quote:
    base: dict[str, Any] = dict(
        symbol=sym, price=512.25, volume=1234, change_percent=-0.5, market_time=T,
        market_state="REGULAR", currency="USD", exchange="NYQ", source="", ingest_time_ns=0,
        correlation_id="",
    )  # fmt: skip
    base.update(kw)
    return Quote(**base)


def encoded(quotes: list[Quote], rejections: list[Rejection]) -> list[OutMessage]:
    recs = to_records(quotes, rejections, cycle=3, source=0, ingest_time_ns=T * 10**9 + 123_456_789)
    return to_messages(recs).messages


# -- the files are the generator's output ------------------------------------------------------


def test_committed_schemas_match_the_generator() -> None:
    """Regenerate with `.venv/bin/python scripts/gen_schemas.py` when this fails."""
    for path, text in gen.expected_files().items():
        assert path.exists(), f"{path.name} missing: run scripts/gen_schemas.py"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} differs from the msgspec Structs: run scripts/gen_schemas.py"
        )
    generated = {p.name for p in gen.expected_files()}
    committed = {p.name for p in (ROOT / "schemas").glob("*.schema.json")}
    assert committed == generated, f"schemas not produced by the generator: {committed - generated}"


def test_check_mode_detects_a_drifted_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gen_schemas.py --check` fails on a hand-edited file and passes on a regenerated one."""
    for p in (ROOT / "schemas").glob("*.schema.json"):
        shutil.copy(p, tmp_path / p.name)
    monkeypatch.setattr(gen, "SCHEMA_DIR", tmp_path)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 0
    victim = tmp_path / "market_quote.v1.schema.json"
    doc = json.loads(victim.read_text())
    del doc["properties"]["price"]
    victim.write_text(json.dumps(doc))
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0  # rewrites it
    assert gen.main(["--check"]) == 0


def test_every_schema_names_its_subject_version_and_id() -> None:
    for sub in gen.SUBJECTS:
        doc = schema(sub.file_stem)
        assert doc["$id"].endswith("/" + sub.file_name)
        assert f".v{sub.version}." in sub.file_name
        assert doc["x-subject"] == sub.subject and sub.subject in doc["title"]
        assert doc["properties"]["schema_version"] == {
            "const": sub.version,
            "description": doc["properties"]["schema_version"]["description"],
        }
        assert set(doc["required"]) == set(doc["properties"])
        assert all(p.get("description") for p in doc["properties"].values())


def test_a_field_without_description_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    (sub,) = [s for s in gen.SUBJECTS if s.file_stem == "market_quote"]
    descriptions = dict(gen.DESCRIPTIONS[sub.struct])
    del descriptions["volume"]
    monkeypatch.setitem(gen.DESCRIPTIONS, sub.struct, descriptions)
    with pytest.raises(ValueError, match=r"QuoteMessage\.volume has no description"):
        gen.build(sub)


# -- encoded messages validate -----------------------------------------------------------------


def test_quote_messages_validate() -> None:
    msgs = encoded(
        [
            quote(),
            quote("AAPL", change_percent=None, currency=None, exchange=None, stale=True,
                  market_state="CLOSED"),
            *(quote(f"S{i}", market_state=s) for i, s in enumerate(MARKET_STATES)),
        ],
        [],
    )  # fmt: skip
    props = set(schema("market_quote")["properties"])
    for m in msgs:
        doc = json.loads(m.payload)
        assert errors("market_quote", doc) == [], doc
        assert set(doc) == props  # the schema describes every field the encoder writes
        assert m.msg_id == f"{doc['symbol']}:{doc['market_time']}:{doc['volume']}"


def test_dead_letters_validate_for_every_reason() -> None:
    rejections = [
        Rejection(f"X{int(r)}", r, f"detail of {r.label}", T, 1.5, 10, 0.1, "REGULAR", "USD", "NMS")
        for r in RejectReason
    ]
    rejections.append(Rejection("BAD", RejectReason.MALFORMED, "quote did not decode"))
    msgs = encoded([], rejections)
    props = set(schema("market_dlq")["properties"])
    seen = set()
    for m in msgs:
        doc = json.loads(m.payload)
        assert errors("market_dlq", doc) == [], doc
        assert set(doc) == props
        seen.add(doc["reason"])
    assert seen == {r.label for r in RejectReason}
    bare = json.loads(msgs[-1].payload)
    assert bare["market_time"] is None and bare["price"] is None and bare["market_state"] is None


def test_unpublishable_dead_letter_validates() -> None:
    (m,) = encoded([quote()], [])
    letter = json.loads(encode_dlq(unpublishable(m, "data.market.quote", "APIError: too big")))
    assert errors("market_dlq", letter) == [], letter
    assert letter["kind"] == "unpublishable" and letter["original_msg_id"] == m.msg_id
    assert json.loads(letter["original"]) == json.loads(m.payload)


@pytest.mark.parametrize("kind", ["reporting_today", "eps_reported"])
def test_earnings_messages_validate(kind: str) -> None:
    day = dt.date(2026, 11, 25)
    e = EarningsEvent(
        symbol="AAPL", event_date=day, event_time=dt.datetime(2026, 11, 25, 21, 30, tzinfo=dt.UTC),
        timing="AMC", company_name=None, eps_estimate=1.5,
        eps_reported=1.6 if kind == "eps_reported" else None,
        surprise_pct=6.67 if kind == "eps_reported" else None, source=SOURCE_QUOTE_SUMMARY,
    )  # fmt: skip
    now = dt.datetime(2026, 11, 25, 14, 30, 0, 123456, tzinfo=dt.UTC)
    doc = json.loads(msgspec.json.encode(build_message(kind, e, day, now)))  # type: ignore[arg-type]
    assert errors("earnings_reported", doc) == [], doc
    assert set(doc) == set(schema("earnings_reported")["properties"])
    assert message_id(kind, e) == f"earnings:{kind}:AAPL:2026-11-25"  # type: ignore[arg-type]


# -- and the schemas are not vacuous -----------------------------------------------------------


def _good_quote() -> dict[str, Any]:
    return dict(json.loads(encoded([quote()], [])[0].payload))


@pytest.mark.parametrize(
    ("patch", "why"),
    [
        ({"price": "512.25"}, "is not of type"),
        ({"price": 0}, "less than or equal to the minimum"),
        ({"volume": -1}, "less than the minimum"),
        ({"schema_version": 2}, "1 was expected"),
        ({"market_state": "OPEN"}, "is not one of"),
        ({"timestamp": "2025-11-24 16:00:00"}, "does not match"),
        ({"correlation_id": "not-a-uuid"}, "is not a 'uuid'"),
        ({"symbol": ""}, "should be non-empty"),
    ],
)
def test_quote_schema_rejects_bad_values(patch: dict[str, Any], why: str) -> None:
    errs = errors("market_quote", {**_good_quote(), **patch})
    assert any(why in e for e in errs), errs


def test_missing_field_and_unknown_reason_are_rejected() -> None:
    doc = _good_quote()
    del doc["market_time"]
    assert any("'market_time' is a required property" in e for e in errors("market_quote", doc))
    (m,) = encoded([], [Rejection("X", RejectReason.STALE, "old", T)])
    letter = {**json.loads(m.payload), "reason": "too_expensive"}
    assert any("is not one of" in e for e in errors("market_dlq", letter))


def test_unknown_fields_are_allowed() -> None:
    """Additive changes within a schema_version must not break a validating consumer."""
    assert errors("market_quote", {**_good_quote(), "bid": 1.0}) == []
