"""Ring records <-> published messages: the wire format consumers see."""

from __future__ import annotations

import uuid

import msgspec

from engine.quote import DlqMessage, Quote, QuoteMessage, Rejection, RejectReason
from engine.records import (
    SOURCES,
    OutMessage,
    encode_dlq,
    to_messages,
    to_records,
    unpublishable,
    uuid4_bytes,
)

T = 1_764_000_000


def one_dlq(rej: Rejection, cycle: int) -> OutMessage:
    (m,) = to_messages(
        to_records([], [rej], cycle=cycle, source=0, ingest_time_ns=T * 10**9)
    ).messages
    return m


def quote(sym: str = "BRK-B", **kw: object) -> Quote:
    base: dict[str, object] = dict(
        symbol=sym, price=512.25, volume=1234, change_percent=-0.5, market_time=T,
        market_state="REGULAR", currency="USD", exchange="NYQ", source="", ingest_time_ns=0,
        correlation_id="",
    )  # fmt: skip
    base.update(kw)
    return Quote(**base)  # type: ignore[arg-type]


class TestRecords:
    def test_quote_round_trip(self) -> None:
        """A quote written as a record comes out as the documented JSON message and msg id."""
        recs = to_records([quote()], [], cycle=7, source=0, ingest_time_ns=T * 10**9 + 123_456_789)
        (m,) = to_messages(recs).messages
        assert not m.dlq and m.msg_id == f"BRK-B:{T}:1234" and m.cycle == 7
        msg = msgspec.json.decode(m.payload, type=QuoteMessage)
        assert msg.symbol == "BRK-B" and msg.price == 512.25 and msg.volume == 1234
        assert msg.change_percent == -0.5 and msg.market_time == T
        assert msg.timestamp == "2025-11-24T16:00:00Z"
        assert msg.ingest_time == "2025-11-24T16:00:00.123456Z"
        assert msg.currency == "USD" and msg.exchange == "NYQ" and msg.market_state == "REGULAR"
        assert msg.source == SOURCES[0] and msg.schema_version == 1 and not msg.stale
        assert uuid.UUID(msg.correlation_id).version == 4

    def test_payload_is_the_quotes_own_message(self) -> None:
        """The payload built from the record is exactly ``Quote.to_message()`` of the quote the
        store and the cache get (field for field, nulls and flags included)."""
        qs = [quote("A"), quote("B", change_percent=None, stale=True, currency=None,
                                exchange=None, market_state="POST")]  # fmt: skip
        d = to_messages(to_records(qs, [], cycle=3, source=1, ingest_time_ns=T * 10**9 + 7))
        enc = msgspec.json.Encoder()
        assert [m.payload for m in d.messages] == [enc.encode(q.to_message()) for q in d.quotes]
        assert [m.msg_id for m in d.messages] == [q.msg_id for q in d.quotes]
        assert [(q.symbol, q.currency, q.stale, q.source) for q in d.quotes] == [
            ("A", "USD", False, SOURCES[1]),
            ("B", None, True, SOURCES[1]),
        ]

    def test_null_change_percent_and_stale_flag(self) -> None:
        """A missing change percent is null; the stale flag survives the ring."""
        recs = to_records([quote(change_percent=None, stale=True, market_state="CLOSED")], [],
                          cycle=1, source=0, ingest_time_ns=T * 10**9)  # fmt: skip
        msg = msgspec.json.decode(to_messages(recs).messages[0].payload, type=QuoteMessage)
        assert msg.change_percent is None and msg.stale and msg.market_state == "CLOSED"

    def test_rejection_becomes_dead_letter(self) -> None:
        """A rejection goes to the DLQ subject with its reason, detail and a stable msg id."""
        rej = Rejection("XYZ", RejectReason.PRICE_OUT_OF_RANGE, "price=0.001", T, 0.001)
        (m,) = to_messages(
            to_records([], [rej], cycle=3, source=0, ingest_time_ns=T * 10**9)
        ).messages
        assert m.dlq and m.msg_id == f"XYZ:price_out_of_range:{T}"
        d = msgspec.json.decode(m.payload, type=DlqMessage)
        assert (d.kind, d.symbol, d.reason, d.detail) == (
            "rejected",
            "XYZ",
            "price_out_of_range",
            "price=0.001",
        )
        assert d.price == 0.001 and d.market_time == T and d.cycle == 3

    def test_rejection_without_time_keys_on_ingest_second(self) -> None:
        """Without a market time the DLQ msg id falls back to the record's ingest second (not
        the cycle number, which starts again at 1 after a restart and would be deduplicated)."""
        rej = Rejection("XYZ", RejectReason.MISSING_TIME, "regularMarketTime absent")
        (m,) = to_messages(
            to_records([], [rej], cycle=9, source=0, ingest_time_ns=T * 10**9 + 5)
        ).messages
        assert m.msg_id == f"XYZ:missing_time:i{T}"
        assert msgspec.json.decode(m.payload, type=DlqMessage).market_time is None

    def test_long_text_is_truncated_not_corrupted(self) -> None:
        """Details longer than the record field are cut, and multi-byte text stays decodable."""
        rej = Rejection("XYZ", RejectReason.MALFORMED, "é" * 200)
        (m,) = to_messages(
            to_records([], [rej], cycle=1, source=0, ingest_time_ns=T * 10**9)
        ).messages
        assert len(msgspec.json.decode(m.payload, type=DlqMessage).detail) <= 96

    def test_uuid4_bytes_are_valid_and_distinct(self) -> None:
        """Minted correlation ids are RFC 4122 version 4 and unique."""
        ids = [uuid.UUID(bytes=bytes(row)) for row in uuid4_bytes(1000)]
        assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in ids)
        assert len(set(ids)) == 1000

    def test_mixed_batch_keeps_order(self) -> None:
        """Quotes then rejections, in order, each with its own correlation id."""
        recs = to_records([quote("A"), quote("B")], [Rejection("C", RejectReason.STALE, "old", T)],
                          cycle=1, source=0, ingest_time_ns=T * 10**9)  # fmt: skip
        d = to_messages(recs)
        msgs, quotes = d.messages, d.quotes
        assert [q.symbol for q in quotes] == ["A", "B"]
        assert [m.dlq for m in msgs] == [False, False, True]
        assert [m.msg_id.split(":")[0] for m in msgs] == ["A", "B", "C"]


class TestUnchanged:
    def test_unchanged_quotes_refresh_cache_only(self) -> None:
        """Unchanged quotes travel the ring but are not published or stored again."""
        recs = to_records([quote("A")], [], cycle=1, source=0, ingest_time_ns=T * 10**9,
                          unchanged=[quote("B")])  # fmt: skip
        d = to_messages(recs)
        assert [m.msg_id.split(":")[0] for m in d.messages] == ["A"]
        assert [q.symbol for q in d.quotes] == ["A"]
        assert [q.symbol for q in d.unchanged] == ["B"]


class TestUnpublishable:
    def test_refused_message_is_kept_verbatim_in_its_dead_letter(self) -> None:
        """What ``dlq replay`` needs to re-send it: subject, msg id and payload, unchanged."""
        m = OutMessage(False, f"BRK-B:{T}", b'{"symbol":"BRK-B"}', 9)
        letter = unpublishable(m, "data.market.quote", "BadRequestError: too big")
        assert letter.kind == "unpublishable" and letter.reason == "jetstream_rejected"
        assert letter.symbol == "BRK-B" and letter.cycle == 9 and letter.source == "engine"
        assert letter.detail == "BadRequestError: too big"
        assert letter.original_subject == "data.market.quote"
        assert letter.original_msg_id == f"BRK-B:{T}"
        assert letter.original == '{"symbol":"BRK-B"}'
        assert msgspec.json.decode(encode_dlq(letter), type=DlqMessage) == letter


class TestQuarantine:
    """A record failing after validation is dead-lettered alone; its neighbours go on."""

    def test_a_quote_that_does_not_fit_a_record_becomes_an_encoding_failed_rejection(self) -> None:
        long = "TECK-" + "X" * 295
        recs = to_records(
            [quote("AAPL"), quote("HUGE", volume=2**63), quote(long), quote("MSFT")],
            [],
            cycle=3,
            source=0,
            ingest_time_ns=T * 10**9,
        )
        d = to_messages(recs)
        assert [q.symbol for q in d.quotes] == ["AAPL", "MSFT"]  # never cut to 24 bytes
        letters = [msgspec.json.decode(m.payload, type=DlqMessage) for m in d.messages if m.dlq]
        assert [(x.reason, x.symbol) for x in letters] == [
            ("encoding_failed", "HUGE"),
            ("encoding_failed", long[:21] + "..."),
        ]
        assert all(x.detail.startswith("ring: ") for x in letters)

    def test_a_rejection_carrying_extreme_values_still_encodes(self) -> None:
        rej = Rejection("BIG", RejectReason.VOLUME_OUT_OF_RANGE, "volume=2**63",
                        market_time=2**63, price=float("inf"), volume=2**63)  # fmt: skip
        letter = msgspec.json.decode(one_dlq(rej, 1).payload, type=DlqMessage)
        assert letter.reason == "volume_out_of_range" and letter.volume is None
        assert letter.market_time is None and letter.price is None

    def test_a_record_whose_message_cannot_be_built_is_quarantined(self) -> None:
        recs = to_records([quote("AAPL"), quote("BAD"), quote("MSFT")], [], cycle=5, source=0,
                          ingest_time_ns=T * 10**9)  # fmt: skip
        recs["market_time"][1] = -(2**62)  # gmtime cannot show it
        d = to_messages(recs)
        assert d.quarantined == 1
        assert [q.symbol for q in d.quotes] == ["AAPL", "MSFT"]
        assert [m.dlq for m in d.messages] == [False, True, False]
        letter = msgspec.json.decode(d.messages[1].payload, type=DlqMessage)
        assert (letter.symbol, letter.reason, letter.cycle) == ("BAD", "encoding_failed", 5)
        assert letter.detail.startswith("publish: ") and d.messages[1].msg_id.startswith(
            "BAD:encoding_failed:i"
        )
