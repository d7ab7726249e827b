"""Earnings messages: their ids and their JSON against the generated schema."""

from __future__ import annotations

import datetime as dt
import json

import msgspec

from engine.earnings.publish import build_message, message_id
from tests.unit.earnings.events import D1, FETCHED, ROOT, ev


def test_messages_match_the_json_schema() -> None:
    schema = json.loads((ROOT / "schemas" / "earnings_reported.v1.schema.json").read_text())
    e = ev("AAPL", D1, eps_estimate=1.0, eps_reported=1.1, surprise_pct=10.0, company_name="A")
    msg = json.loads(msgspec.json.encode(build_message("eps_reported", e, D1, FETCHED)))
    assert set(msg) == set(schema["required"]) == set(schema["properties"])
    kinds: dict[str, tuple[type, ...]] = {
        "string": (str,),
        "number": (int, float),
        "null": (type(None),),
        "integer": (int,),
    }
    for key, spec in schema["properties"].items():
        if "enum" in spec:
            assert msg[key] in spec["enum"], key
        elif "const" in spec:
            assert msg[key] == spec["const"]
        else:
            types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
            allowed = tuple(k for t in types for k in kinds[t])
            assert isinstance(msg[key], allowed), key
    dt.date.fromisoformat(msg["event_date"])
    dt.datetime.fromisoformat(msg["event_time"].replace("Z", "+00:00"))
    assert message_id("eps_reported", e) == "earnings:eps_reported:AAPL:2026-11-25"
