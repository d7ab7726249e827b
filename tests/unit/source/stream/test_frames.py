"""engine.source.stream.frames: the server's JSON text frames and the client's subscribe frames."""

from __future__ import annotations

import base64

import orjson
import pytest

from engine.errors import StreamFrameError
from engine.source.stream.frames import (
    decode_frame,
    encode_frame,
    envelope,
    subscribe_frame,
    unsubscribe_frame,
)
from engine.source.stream.pricing import MarketHours, Pricing
from tests.unit.source.stream import recorded, wire


class TestDecodeFrame:
    def test_pricing_frame(self) -> None:
        p = decode_frame(envelope(recorded.MSFT_LOW))
        assert p is not None and (p.symbol, p.price, p.day_low) == ("MSFT", 177.42, 177.42)

    def test_bytes_and_extra_keys(self) -> None:
        text = orjson.dumps({"type": "pricing", "message": recorded.AAPL_1255, "x": [1]})
        p = decode_frame(text)
        assert p is not None and p.day_volume == 17557274

    def test_frame_without_type_is_pricing(self) -> None:
        """The reference clients read ``message`` only."""
        p = decode_frame(orjson.dumps({"message": recorded.AAPL_1255}))
        assert p is not None and p.symbol == "AAPL"

    @pytest.mark.parametrize("kind", ["heartbeat", "StaticData", "", "PRICING"])
    def test_other_types_are_ignored(self, kind: str) -> None:
        assert decode_frame(envelope(recorded.AAPL_1255, kind)) is None
        assert decode_frame(orjson.dumps({"type": kind, "message": "not base64 @@"})) is None

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("not json", "not_json"),
            ('{"type":"pricing","message":"abc', "not_json"),
            ("[1, 2]", "bad_envelope"),
            ('"CgRNU0ZU"', "bad_envelope"),  # the unversioned URL's bare base64, quoted
            ('{"type": 5, "message": "CgRNU0ZU"}', "bad_envelope"),
            ('{"type":"pricing","message":5}', "bad_envelope"),
            ('{"type":"pricing"}', "bad_envelope"),
            ('{"type":"pricing","message":""}', "bad_envelope"),
            ('{"type":"pricing","message":"@@@"}', "bad_base64"),
            ('{"type":"pricing","message":"CgRNU0Z"}', "bad_base64"),  # padding missing
            ('{"type":"pricing","message":"Cg\u00e9RNU0ZU"}', "bad_base64"),
            ('{"type":"pricing","message":"////"}', "bad_protobuf"),
            ('{"type":"pricing","message":"FQAAwD8="}', "no_symbol"),  # price only
        ],
    )
    def test_garbage(self, text: str, reason: str) -> None:
        with pytest.raises(StreamFrameError) as info:
            decode_frame(text)
        assert info.value.reason == reason
        assert info.value.excerpt == text[:80]

    def test_error_names_the_frame(self) -> None:
        with pytest.raises(StreamFrameError, match="not json"):
            decode_frame("not json")


class TestEncodeFrame:
    def test_round_trip(self) -> None:
        p = Pricing(symbol="AAPL", price=231.5, time_ms=1_764_171_234_000, market_hours=1)
        text = encode_frame(p)
        assert orjson.loads(text)["type"] == "pricing"
        assert decode_frame(text) == p

    def test_components_are_carried_and_skipped(self) -> None:
        p = Pricing(symbol="AAPL", price=231.5, market_hours=MarketHours.PRE)
        text = encode_frame(p, components="x")
        raw = base64.b64decode(orjson.loads(text)["message"])
        assert wire.read_fields(raw)[34] == [b"x"] and 7 not in wire.read_fields(raw)
        assert decode_frame(text) == p


class TestControlFrames:
    def test_subscribe_and_unsubscribe(self) -> None:
        assert orjson.loads(subscribe_frame(["AAPL", "BRK-B"])) == {"subscribe": ["AAPL", "BRK-B"]}
        assert orjson.loads(unsubscribe_frame(iter(["AAPL"]))) == {"unsubscribe": ["AAPL"]}
        assert orjson.loads(subscribe_frame([])) == {"subscribe": []}

    @pytest.mark.parametrize("bad", [[None], ["AAPL", ""], ["AAPL", 5]])
    def test_a_null_symbol_is_refused(self, bad: list[object]) -> None:
        with pytest.raises(TypeError, match="non-empty strings"):
            subscribe_frame(bad)  # type: ignore[arg-type]
