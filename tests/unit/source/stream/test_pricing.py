"""engine.source.stream.pricing: PricingData bytes <-> Pricing, against frames Yahoo really sent
and frames built byte by byte from the fact sheet's field table."""

from __future__ import annotations

import base64
import datetime as dt
import struct

import msgspec
import numpy as np
import pytest

from engine.errors import StreamFrameError, UpstreamPayloadError
from engine.source.stream import proto
from engine.source.stream.pricing import (
    MarketHours,
    Pricing,
    QuoteType,
    decode_pricing,
    encode_pricing,
    float32_value,
)
from tests.unit.source.stream import recorded, wire


def b64(frame: str) -> bytes:
    return base64.b64decode(frame)


def ms(y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.UTC).timestamp()) * 1000


class TestRecordedFrames:
    def test_yfinance_btc_frame(self) -> None:
        """Every field of yfinance's crypto frame, as its own test expects it."""
        p = decode_pricing(b64(recorded.BTC))
        assert p == Pricing(
            symbol="BTC-USD",
            price=94745.08,
            time_ms=1736509140000,
            currency="USD",
            exchange="CCC",
            quote_type=QuoteType.CRYPTOCURRENCY,
            market_hours=MarketHours.REGULAR,
            change_percent=1.5344921,
            day_volume=59712028672,
            day_high=95227.555,
            day_low=92517.22,
            change=1431.8906,
            open_price=92529.99,
            last_size=59712028672,
            price_hint=2,
            vol_24hr=59712028672,
            vol_all_currencies=59712028672,
            from_currency="BTC",
            circulating_supply=19808172.0,
            market_cap=1876726640000.0,
        )

    def test_msft_regular_frame(self) -> None:
        """yliveticker's MSFT frame: the values its test expects, floats as shortest decimals."""
        p = decode_pricing(b64(recorded.MSFT_LOW))
        assert (p.symbol, p.exchange, p.quote_type, p.market_hours) == ("MSFT", "NMS", 8, 1)
        # the change is not float32(-3.11) (-3.1099999): Yahoo computed it in float32
        assert (p.price, p.change, p.change_percent) == (177.42, -3.1100006, -1.7227057)
        assert (p.time_ms, p.day_volume, p.price_hint) == (1589554809000, 10460764, 2)

    def test_day_high_and_low_only_in_the_frame_where_they_changed(self) -> None:
        """One MSFT frame carries a new low (== price) and the high; the others carry neither."""
        low = decode_pricing(b64(recorded.MSFT_LOW))
        assert low.day_low == low.price == 177.42 and low.day_high == 180.1336
        for frame in (recorded.MSFT_A, recorded.MSFT_B, recorded.MSFT_C):
            p = decode_pricing(b64(frame))
            assert p.day_high is None and p.day_low is None

    def test_two_frames_share_a_time_and_differ_in_volume(self) -> None:
        a, b = decode_pricing(b64(recorded.MSFT_A)), decode_pricing(b64(recorded.MSFT_B))
        assert a.time_ms == b.time_ms == ms(2020, 5, 15, 15, 5, 23)
        assert (b.day_volume, a.day_volume) == (11_021_443, 11_021_582)
        assert a.price == b.price == 177.29

    def test_times_are_epoch_ms_on_whole_seconds(self) -> None:
        c = decode_pricing(b64(recorded.MSFT_C))
        assert c.time_ms == ms(2020, 5, 15, 15, 5, 20) and c.time_ms % 1000 == 0

    def test_aapl_frame_and_the_zigzag_trap(self) -> None:
        """Decoded as sint64 the volume is 17,557,274 at 12:55 ET; the same varints read as
        plain int64 (what an int64 declaration gives) are doubled: 35,114,548 and hint 4."""
        raw = b64(recorded.AAPL_1255)
        p = decode_pricing(raw)
        assert (p.symbol, p.price, p.day_volume, p.price_hint) == ("AAPL", 314.765, 17557274, 2)
        assert p.time_ms == ms(2020, 5, 18, 16, 55, 33)
        fields = wire.read_fields(raw)
        assert fields[9] == [35_114_548] and fields[27] == [4]
        assert wire.unzigzag(35_114_548) == 17_557_274
        later = decode_pricing(b64(recorded.AAPL_1255B))
        assert later.time_ms - p.time_ms == 5000 and later.day_volume == 17557426

    def test_explicit_market_hours_zero_is_pre(self) -> None:
        p = decode_pricing(b64(recorded.AAPL_PRE))
        assert p.market_hours == MarketHours.PRE and p.day_volume is None
        assert (p.price, p.time_ms) == (305.76, ms(2026, 5, 22, 8, 10, 22))

    def test_undeclared_market_hours_value_is_kept(self) -> None:
        """proto3 enums are open: the overnight value 4 comes through as 4."""
        p = decode_pricing(b64(recorded.AAPL_OVERNIGHT))
        assert p.market_hours == 4 and p.price == 276.34

    def test_the_btc_frame_reencodes_byte_for_byte(self) -> None:
        raw = b64(recorded.BTC)
        assert encode_pricing(decode_pricing(raw)) == raw


def post_frame(*extra: bytes, market_hours: int | None = 2) -> bytes:
    """AAPL after the close on 2025-04-08 (fact sheet 1.2): 172.60, +0.18 from the 172.42
    close, no day_volume. Built field by field."""
    parts = [
        wire.string(1, "AAPL"),
        wire.float32(2, 172.60),
        wire.sint64(3, ms(2025, 4, 8, 20, 45)),
        wire.string(5, "NMS"),
        wire.int32(6, 8),
    ]
    if market_hours is not None:
        parts.append(wire.int32(7, market_hours))
    parts += [
        wire.float32(8, 0.18 / 172.42 * 100),
        wire.float32(12, 0.18),
        wire.sint64(27, 2),
        *extra,
    ]
    return b"".join(parts)


class TestHandBuiltFrames:
    def test_post_market_frame(self) -> None:
        p = decode_pricing(post_frame())
        assert p.market_hours == MarketHours.POST and p.day_volume is None
        assert (p.price, p.change, p.change_percent) == (172.6, 0.18, 0.10439624)
        assert round(p.price - p.change, 2) == 172.42
        assert p.time_ms == ms(2025, 4, 8, 20, 45) and p.currency is None

    def test_absent_market_hours_is_pre(self) -> None:
        assert decode_pricing(post_frame(market_hours=None)).market_hours == MarketHours.PRE

    def test_unknown_fields_are_skipped(self) -> None:
        """Field 34 (components, a string) and others this proto does not declare: varint,
        64-bit, 32-bit, length-delimited."""
        extra = (
            wire.string(34, "^GSPC,^DJI"),
            wire.tag(99, 0) + wire.varint(12345),
            wire.tag(100, 1) + struct.pack("<d", 1.5),
            wire.tag(101, 5) + struct.pack("<f", 2.5),
        )
        assert decode_pricing(post_frame(*extra)) == decode_pricing(post_frame())

    def test_negative_sint64_values(self) -> None:
        raw = wire.string(1, "X") + wire.sint64(20, -1) + wire.sint64(9, -(2**62))
        p = decode_pricing(raw)
        assert (p.options_type, p.day_volume) == (-1, -(2**62))

    def test_double_fields_are_not_float32(self) -> None:
        raw = wire.string(1, "X") + wire.double(33, 1876726640123.25)
        assert decode_pricing(raw).market_cap == 1876726640123.25


class TestGarbage:
    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            (b"\xff\xff\xff", "bad_protobuf"),  # a varint that never ends
            (wire.string(1, "AAPL")[:-2], "bad_protobuf"),  # truncated string
            (wire.tag(1, 2) + b"\x02\xff\xfe", "bad_protobuf"),  # id not UTF-8
            (wire.tag(2, 7), "bad_protobuf"),  # wire type 7 does not exist
            (wire.float32(2, 1.5), "no_symbol"),
            (b"", "no_symbol"),
        ],
    )
    def test_garbage_raises_stream_frame_error(self, payload: bytes, reason: str) -> None:
        with pytest.raises(StreamFrameError) as info:
            decode_pricing(payload)
        assert info.value.reason == reason and not info.value.retryable
        assert isinstance(info.value, UpstreamPayloadError)


class TestFloat32:
    @pytest.mark.parametrize(
        ("wide", "short"),
        [
            (314.7650146484375, 314.765),
            (94745.078125, 94745.08),
            (1.5344921350479126, 1.5344921),
            (177.4199981689453, 177.42),
            (-3.1100006103515625, -3.1100006),
            (-3.1099998950958252, -3.11),
            (0.0, 0.0),
            (1e-45, 1e-45),  # smallest subnormal
        ],
    )
    def test_known_values(self, wide: float, short: float) -> None:
        assert float32_value(wide) == short

    def test_shortest_and_round_trips(self) -> None:
        """For random float32 values: the result packs back to the same bits, and no decimal
        with one digit fewer does."""
        rng = np.random.default_rng(7)
        bits = rng.integers(0, 2**31 - 2**23, size=3000, dtype=np.uint32)  # finite, >= 0
        for x in bits.view(np.float32).tolist():
            short = float32_value(x)
            assert np.float32(short) == np.float32(x)
            digits = len(np.format_float_scientific(short, trim="-").split("e")[0].replace(".", ""))
            if digits > 1:
                fewer = float(f"{short:.{digits - 2}e}")
                assert np.float32(fewer) != np.float32(x), (x, short)

    def test_infinities_and_nan(self) -> None:
        assert float32_value(float("inf")) == float("inf")
        assert float32_value(float("nan")) != float32_value(float("nan"))


class TestEncode:
    def full(self) -> Pricing:
        return Pricing(
            symbol="ES=F",
            time_ms=1_764_171_234_000,
            price=6010.25,
            market_hours=MarketHours.REGULAR,
            change=-12.5,
            change_percent=-0.2075,
            day_volume=1_234_567,
            day_high=6030.5,
            day_low=5990.75,
            exchange="CME",
            quote_type=QuoteType.FUTURE,
            price_hint=2,
            currency="USD",
            short_name="E-Mini S&P 500",
            open_price=6022.0,
            previous_close=6022.75,
            last_size=3,
            bid=6010.0,
            bid_size=40,
            ask=6010.5,
            ask_size=-7,
            expire_date=1_766_000_000,
            strike_price=6000.0,
            underlying_symbol="ES",
            open_interest=2_000_000,
            options_type=1,
            mini_option=0,
            vol_24hr=9_000_000_000_000,
            vol_all_currencies=123,
            from_currency="USD",
            last_market="CME",
            circulating_supply=0.5,
            market_cap=1e15,
        )

    def test_round_trip_of_every_field(self) -> None:
        p = self.full()
        assert decode_pricing(encode_pricing(p)) == p

    def test_the_struct_mirrors_the_proto(self) -> None:
        renamed = {"id": "symbol", "time": "time_ms"}
        names = {renamed.get(n, n) for n, _, _ in proto.FIELDS}
        assert names == set(Pricing.__struct_fields__)
        assert [n for _, n, _ in proto.FIELDS] == list(range(1, 34))

    def test_pre_is_not_written(self) -> None:
        raw = encode_pricing(Pricing(symbol="AAPL", price=1.5, market_hours=MarketHours.PRE))
        assert 7 not in wire.read_fields(raw)
        raw = encode_pricing(Pricing(symbol="AAPL", price=1.5, market_hours=MarketHours.POST))
        assert wire.read_fields(raw)[7] == [2]

    def test_sint64_and_float32_on_the_wire(self) -> None:
        raw = encode_pricing(Pricing(symbol="AAPL", day_volume=17_557_274, price=314.765))
        fields = wire.read_fields(raw)
        assert fields[9] == [35_114_548]
        assert fields[2] == [struct.pack("<f", 314.765)]

    def test_components_field(self) -> None:
        p = Pricing(symbol="^GSPC", price=6000.5)
        raw = encode_pricing(p, components="AAPL,MSFT")
        assert wire.read_fields(raw)[34] == [b"AAPL,MSFT"]
        assert decode_pricing(raw) == p

    def test_matches_yfinance_proto(self) -> None:
        """yfinance's generated class (its own pricing.proto) reads our bytes to the same
        values: the field numbers and types agree."""
        pricing_pb2 = pytest.importorskip("yfinance.pricing_pb2")
        p = self.full()
        theirs = pricing_pb2.PricingData.FromString(encode_pricing(p))
        values = {f.name: v for f, v in theirs.ListFields()}
        values["symbol"], values["time_ms"] = values.pop("id"), values.pop("time")
        floats = proto.FLOAT32_FIELDS
        mine = msgspec.structs.asdict(p)
        for name, value in mine.items():
            got = values.get(name, 0)
            expected = float32_value(got) if name in floats else got
            assert expected == value, name
