"""Earnings messages: their ids and their JSON against the generated schema."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import msgspec
import nats.errors
import pytest

from engine.config import EarningsSettings
from engine.earnings import publish
from engine.earnings.publish import EarningsPublisher, build_message, message_id
from engine.errors import PublishError
from engine.retry import RetryPolicy
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


class FakeJetStream:
    def __init__(self, failures: int, duplicate: bool = False) -> None:
        self.failures = failures
        self.duplicate = duplicate
        self.calls: list[dict[str, str]] = []

    async def publish(self, subject: str, payload: bytes, **kw: Any) -> Any:
        self.calls.append(kw["headers"])
        if len(self.calls) <= self.failures:
            raise nats.errors.TimeoutError
        return SimpleNamespace(duplicate=self.duplicate)


def publisher(js: FakeJetStream) -> EarningsPublisher:
    nc = SimpleNamespace(jetstream=lambda: js)
    return EarningsPublisher(nc, EarningsSettings(), timeout_s=1.0)


@pytest.fixture(autouse=True)
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publish, "_PUBLISH_RETRY", RetryPolicy(attempts=4, base_s=0.0, cap_s=0.0))


async def test_a_message_is_published_until_acknowledged() -> None:
    js = FakeJetStream(failures=2)
    e = ev("AAPL", D1)
    out = await publisher(js).publish([("id-1", build_message("reporting_today", e, D1, FETCHED))])
    assert (out.published, out.duplicates) == (1, 0)
    assert js.calls == [{"Nats-Msg-Id": "id-1"}] * 3


async def test_a_duplicate_ack_counts_as_a_duplicate() -> None:
    msg = build_message("reporting_today", ev("AAPL", D1), D1, FETCHED)
    out = await publisher(FakeJetStream(0, duplicate=True)).publish([("id-1", msg)])
    assert (out.published, out.duplicates) == (0, 1)


async def test_no_ack_after_every_attempt_is_a_publish_error() -> None:
    js = FakeJetStream(failures=10)
    msg = build_message("eps_reported", ev("AAPL", D1), D1, FETCHED)
    with pytest.raises(PublishError, match="not acknowledged after 4 attempts"):
        await publisher(js).publish([("id-1", msg)])
    assert len(js.calls) == 4
