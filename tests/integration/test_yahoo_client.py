"""The Yahoo client against the emulator: auth flow, decoding, retries, error translation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from engine.config import YahooSettings
from engine.errors import (
    RateLimitedError,
    UpstreamAuthError,
    UpstreamPayloadError,
    UpstreamServerError,
    UpstreamTransportError,
)
from engine.source.client import YahooClient
from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.server import RunningEmulator, serve_emulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SYMBOLS = ["AAPL", "MSFT", "NVDA", "BRK-B", "JPM"]


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with serve_emulator(EmulatorConfig(market_state="REGULAR", seed=5)) as running:
        yield running


def settings(emu: RunningEmulator, transport: str = "curl_cffi", **kw: object) -> YahooSettings:
    base: dict[str, object] = dict(
        base_url=emu.url, transport=transport, crumb_min_interval_s=0.0,
        backoff_base_s=0.01, backoff_max_s=0.02, timeout_s=5.0,
    )  # fmt: skip
    base.update(kw)
    return YahooSettings(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["curl_cffi", "aiohttp"])
class TestFetch:
    async def test_batch_decoded_unknown_symbols_missing(
        self, emu: RunningEmulator, transport: str
    ) -> None:
        """A batch comes back typed, keyed by symbol; unknown symbols are reported missing."""
        async with YahooClient.connect(settings(emu, transport)) as c:
            batch = await c.fetch_quotes([*SYMBOLS, "NOSUCHSYM"])
        got = {q.symbol: q for q in batch.quotes}
        assert set(got) == set(SYMBOLS)
        assert batch.missing == ["NOSUCHSYM"] and batch.attempts == 1
        q = got["AAPL"]
        assert q.regular_market_price and q.regular_market_time and q.currency == "USD"
        assert q.market_state == "REGULAR" and q.regular_market_volume is not None

    async def test_expired_crumb_refreshed_once(self, emu: RunningEmulator, transport: str) -> None:
        """A 401 Invalid Crumb makes the client fetch a new cookie + crumb and retry."""
        async with YahooClient.connect(settings(emu, transport)) as c:
            await c.fetch_quotes(SYMBOLS)
            emu.expire_crumbs()
            batch = await c.fetch_quotes(SYMBOLS)
            assert len(batch.quotes) == len(SYMBOLS)
            assert c.crumb_refreshes == 2

    async def test_429_storm_gives_rate_limited_after_max_attempts(
        self, emu: RunningEmulator, transport: str
    ) -> None:
        """Every request answered 429: three attempts, then RateLimitedError."""
        async with YahooClient.connect(settings(emu, transport)) as c:
            await c.crumb()
            emu.configure(fault_429=1.0)
            before = emu.stats()["rate_limited"]
            with pytest.raises(RateLimitedError):
                await c.fetch_quotes(SYMBOLS)
            assert emu.stats()["rate_limited"] - before == 3


async def fetch_all_delivered(c: YahooClient, batches: int) -> int:
    """Fetch ``SYMBOLS`` ``batches`` times, each batch whole; the attempts it took."""
    attempts = 0
    for _ in range(batches):
        b = await c.fetch_quotes(SYMBOLS)
        attempts += b.attempts
        assert len(b.quotes) == len(SYMBOLS)
    return attempts


class TestFailures:
    @pytest.mark.parametrize(
        ("knob", "error"),
        [
            ("fault_5xx", UpstreamServerError),
            ("fault_reset", UpstreamTransportError),
            ("fault_truncate", UpstreamPayloadError),
            ("fault_html", UpstreamPayloadError),
        ],
    )
    async def test_each_fault_is_retried_then_translated(
        self, emu: RunningEmulator, knob: str, error: type[Exception]
    ) -> None:
        """Persistent faults exhaust the attempts and surface as one of our error types."""
        async with YahooClient.connect(settings(emu)) as c:
            await c.crumb()
            emu.configure(**{knob: 1.0})
            with pytest.raises(error) as ei:
                await c.fetch_quotes(SYMBOLS)
        assert ei.value.retryable  # type: ignore[attr-defined]

    async def test_intermittent_faults_are_absorbed_by_retries(self, emu: RunningEmulator) -> None:
        """With 30% of requests failing, retries deliver every batch."""
        async with YahooClient.connect(settings(emu)) as c:
            await c.crumb()
            emu.configure(fault_5xx=0.1, fault_reset=0.1, fault_truncate=0.1)
            attempts = await fetch_all_delivered(c, 20)
        assert attempts > 20

    @pytest.mark.fault
    @pytest.mark.parametrize("transport", ["curl_cffi", "aiohttp"])
    async def test_timeouts_are_retried_then_translated(
        self, emu: RunningEmulator, transport: str
    ) -> None:
        """A hung upstream: an intermittent stall is absorbed by a retry; a persistent one
        ends, after the attempts, as a retryable transport error (never a hang)."""
        async with YahooClient.connect(settings(emu, transport, timeout_s=0.3)) as c:
            await c.crumb()
            emu.configure(fault_stall=0.2, stall_s=2.0)  # seed 5: 3 stalls in 13 draws
            attempts = await fetch_all_delivered(c, 10)
            assert attempts > 10
            emu.configure(fault_stall=1.0)
            with pytest.raises(UpstreamTransportError) as ei:
                await c.fetch_quotes(SYMBOLS)
            assert ei.value.retryable
        # the emulator records a stalled request when it ends (it outlives the client's wait)
        stalled = attempts - 10 + 3
        async with asyncio.timeout(10):
            while emu.stats()["faults"].get("stalled", 0) < stalled:  # noqa: ASYNC110 (a counter)
                await asyncio.sleep(0.05)

    async def test_invalid_single_quote_does_not_poison_batch(self, emu: RunningEmulator) -> None:
        """A quote with a wrong type is reported malformed; the rest of the batch decodes."""
        emu.configure(fault_invalid_quote=1.0, invalid_kinds=["string_price"])
        async with YahooClient.connect(settings(emu)) as c:
            b = await c.fetch_quotes(SYMBOLS)
        assert len(b.malformed) == 1 and len(b.quotes) == len(SYMBOLS) - 1
        assert b.malformed[0].symbol in SYMBOLS

    async def test_crumb_answered_too_many_requests(self, emu: RunningEmulator) -> None:
        """getcrumb returning 'Too Many Requests' as text is a rate limit, not a crumb."""
        emu.configure(fault_crumb_text=1.0)
        async with YahooClient.connect(settings(emu)) as c:
            with pytest.raises(RateLimitedError):
                await c.crumb()

    async def test_no_cookie_no_crumb(self, emu: RunningEmulator) -> None:
        """A 401 that persists after one refresh surfaces as UpstreamAuthError."""
        emu.configure(crumb_ttl_s=0.000001)
        async with YahooClient.connect(settings(emu)) as c:
            with pytest.raises(UpstreamAuthError):
                await c.fetch_quotes(SYMBOLS)
