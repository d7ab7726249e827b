"""Async Yahoo Finance client: cookie + crumb, batched ``/v7/finance/quote``, typed decoding.

Hosts follow the fact sheet: cookie seeding on ``fc.yahoo.com`` (answers 404 but sets ``A3``),
``query1`` for getcrumb and v7 quote, ``query2`` for quoteSummary/chart. With
``yahoo.base_url`` set (the emulator), that one origin replaces every host.

Request shape: ``GET /v7/finance/quote?symbols=A,B&fields=...&formatted=false&lang=en-US&region=US
&crumb=...``. ``fields`` lists every field the validator reads, because ``currency``,
``regularMarketVolume`` and ``regularMarketChangePercent`` are not in Yahoo's always-returned
base set. The body is decoded straight into msgspec Structs: the envelope first, then each quote
on its own, so one malformed quote is rejected alone instead of poisoning its batch.

Failure handling (one boundary: everything below raises only :mod:`engine.errors` types):

* 401 (Invalid Crumb/Cookie) -> drop the crumb, fetch a new cookie + crumb once, retry.
* 429, 5xx, network errors, HTML/truncated bodies -> retried with full-jitter exponential backoff,
  at most ``max_attempts`` attempts in all; Retry-After honoured when Yahoo sends one.
* getcrumb answering ``Too Many Requests`` (as the crumb text) -> :class:`RateLimitedError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import msgspec

from engine.config import YahooSettings
from engine.errors import (
    RateLimitedError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamPayloadError,
    status_error,
)
from engine.observe import metrics
from engine.quote import YahooQuote
from engine.retry import full_jitter
from engine.source.guard import Guard, NullGuard
from engine.source.transport import HttpResponse, Transport, make_transport

log = logging.getLogger(__name__)

COOKIE_URL: Final = "https://fc.yahoo.com/"
QUERY1: Final = "https://query1.finance.yahoo.com"
QUERY2: Final = "https://query2.finance.yahoo.com"
CRUMB_PATH: Final = "/v1/test/getcrumb"
QUOTE_PATH: Final = "/v7/finance/quote"

# Every field validate() reads; the base set would omit currency/volume/change percent.
QUOTE_FIELDS: Final = ",".join(
    (
        "symbol",
        "quoteType",
        "marketState",
        "regularMarketPrice",
        "regularMarketTime",
        "regularMarketVolume",
        "regularMarketChangePercent",
        "currency",
        "exchange",
    )
)


class Endpoints(msgspec.Struct, frozen=True):
    cookie: str
    query1: str
    query2: str

    @classmethod
    def for_settings(cls, settings: YahooSettings) -> Endpoints:
        if settings.base_url:
            origin = settings.base_url.rstrip("/")
            return cls(cookie=origin + "/", query1=origin, query2=origin)
        return cls(cookie=COOKIE_URL, query1=QUERY1, query2=QUERY2)


class _Raw(msgspec.Struct):
    result: list[msgspec.Raw] | None = None
    error: Any = None


class _QuoteEnvelope(msgspec.Struct, rename={"quote_response": "quoteResponse"}):
    quote_response: _Raw


class _FinanceError(msgspec.Struct):
    code: str = ""
    description: str = ""


class _FinanceBody(msgspec.Struct):
    error: _FinanceError | None = None


class _FinanceEnvelope(msgspec.Struct):
    finance: _FinanceBody | None = None


class _SymbolOnly(msgspec.Struct):
    symbol: str


_envelope_decoder: Final = msgspec.json.Decoder(_QuoteEnvelope)
_quote_decoder: Final = msgspec.json.Decoder(YahooQuote)
_symbol_decoder: Final = msgspec.json.Decoder(_SymbolOnly)
_finance_decoder: Final = msgspec.json.Decoder(_FinanceEnvelope)


class MalformedQuote(msgspec.Struct, frozen=True):
    symbol: str
    detail: str


class QuoteBatch(msgspec.Struct):
    """What one batch request produced."""

    quotes: list[YahooQuote]
    malformed: list[MalformedQuote]
    missing: list[str]  # requested, not in the response (unknown to Yahoo)
    attempts: int
    latency_s: float


def _error_text(resp: HttpResponse) -> str:
    try:
        env = _finance_decoder.decode(resp.body)
    except msgspec.DecodeError:
        return resp.body[:80].decode("utf-8", "replace").strip()
    if env.finance and env.finance.error:
        return f"{env.finance.error.code}: {env.finance.error.description}"
    return ""


def _retry_after(resp: HttpResponse) -> float | None:
    if not resp.retry_after:
        return None
    try:
        return max(0.0, float(resp.retry_after))
    except ValueError:
        return None


def raise_for_response(resp: HttpResponse) -> None:
    """Translate a non-200 or non-JSON response into the error tree."""
    url = resp.url
    if resp.status == 429 or (resp.status >= 400 and b"Too Many Requests" in resp.body[:64]):
        raise RateLimitedError(retry_after_s=_retry_after(resp), url=url)
    if resp.status == 401:
        raise UpstreamAuthError(f"Yahoo refused the request: {_error_text(resp)}", url=url)
    if resp.status != 200:
        raise status_error(
            f"Yahoo answered HTTP {resp.status}: {_error_text(resp)}", status=resp.status, url=url
        )
    head = resp.body[:256].lstrip()
    if head[:1] == b"<" or "html" in resp.content_type:
        raise UpstreamPayloadError("Yahoo answered an HTML page instead of JSON (outage?)", url=url)


def _check_cookie_answer(resp: HttpResponse) -> None:
    """The cookie call answers 404 (with Set-Cookie) normally; 429 and 5xx are failures."""
    if resp.status == 429 or resp.status >= 500:
        raise_for_response(resp)


def decode_quotes(body: bytes, requested: Sequence[str], url: str = "") -> QuoteBatch:
    """Decode a v7 body; quotes that do not decode are reported, not raised."""
    try:
        env = _envelope_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamPayloadError(f"malformed v7 quote body: {exc}", url=url) from exc
    if env.quote_response.error is not None:
        raise UpstreamPayloadError(f"v7 quote error: {env.quote_response.error!r}"[:200], url=url)
    quotes: list[YahooQuote] = []
    malformed: list[MalformedQuote] = []
    for raw in env.quote_response.result or ():
        try:
            quotes.append(_quote_decoder.decode(raw))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            try:
                sym = _symbol_decoder.decode(raw).symbol
            except (msgspec.DecodeError, msgspec.ValidationError):
                sym = "?"
            malformed.append(MalformedQuote(sym, str(exc)[:90]))
    seen = {q.symbol for q in quotes}
    seen.update(m.symbol for m in malformed)
    missing = [s for s in requested if s not in seen]
    return QuoteBatch(quotes, malformed, missing, attempts=1, latency_s=0.0)


Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class YahooClient:
    """One Yahoo session (cookie jar + crumb). Use :meth:`connect` as an async context manager."""

    def __init__(
        self,
        settings: YahooSettings,
        transport: Transport,
        *,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        guard: Guard | None = None,
    ) -> None:
        self.settings = settings
        self.guard: Guard = guard or NullGuard()
        self.endpoints = Endpoints.for_settings(settings)
        self._transport = transport
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self._crumb: str | None = None
        self._crumb_lock = asyncio.Lock()
        self._last_crumb_fetch = -1e18
        self._closed = False
        self.crumb_refreshes = 0

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, settings: YahooSettings, *, max_clients: int | None = None, guard: Guard | None = None
    ) -> AsyncIterator[YahooClient]:
        transport = make_transport(
            settings.transport,
            impersonate=settings.impersonate,
            max_clients=max_clients or settings.max_in_flight,
        )
        client = cls(settings, transport, guard=guard)
        try:
            yield client
        finally:
            await client.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._transport.aclose()

    # -- cookie + crumb ----------------------------------------------------------------------

    async def crumb(self) -> str:
        """The current crumb, fetching cookie + crumb when there is none."""
        if self._crumb is not None:
            return self._crumb
        async with self._crumb_lock:
            if self._crumb is None:
                self._crumb = await self._fetch_crumb()
            return self._crumb

    async def _fetch_crumb(self) -> str:
        wait = self._last_crumb_fetch + self.settings.crumb_min_interval_s - self._clock()
        if wait > 0:  # Yahoo rate-limits getcrumb when it is asked too often
            await self._sleep(wait)
        self._last_crumb_fetch = self._clock()
        timeout = self.settings.timeout_s
        # 404 + Set-Cookie: A3 is the expected answer; a 429 or 5xx is not (without this
        # check a 429 here counted as a success for the rate limiter, and getcrumb went on
        # without a cookie, spending a second request on an empty crumb)
        await self._guarded(
            lambda: self._transport.get(self.endpoints.cookie, None, timeout),
            parse=_check_cookie_answer,
        )
        resp = await self._guarded(
            lambda: self._transport.get(self.endpoints.query1 + CRUMB_PATH, None, timeout),
            check=True,
        )
        text = resp.body.decode("utf-8", "replace").strip()
        if "Too Many Requests" in text:
            self.guard.record("throttled", 0.0)
            raise RateLimitedError("getcrumb answered 'Too Many Requests'", url=resp.url)
        if not text or "<" in text or len(text) > 64 or any(c.isspace() for c in text):
            raise UpstreamAuthError(
                "getcrumb returned no usable crumb (cookie not accepted?)", url=resp.url
            )
        self.crumb_refreshes += 1
        log.info("crumb_refreshed", extra={"refreshes": self.crumb_refreshes})
        return text

    def invalidate_crumb(self, used: str) -> None:
        if self._crumb == used:
            self._crumb = None

    # -- requests ----------------------------------------------------------------------------

    async def _guarded(
        self,
        call: Callable[[], Awaitable[HttpResponse]],
        *,
        check: bool = False,
        parse: Callable[[HttpResponse], T] | None = None,
    ) -> HttpResponse:
        """One HTTP call through the shared rate limiter and breaker, its outcome reported."""
        await self.guard.acquire()
        t0 = time.perf_counter()
        try:
            resp = await call()
            if check:
                raise_for_response(resp)
            if parse is not None:
                parse(resp)
        except RateLimitedError as exc:
            self.guard.record("throttled", time.perf_counter() - t0, exc.retry_after_s)
            raise
        except UpstreamError as exc:
            server_fault = exc.retryable and not isinstance(exc, UpstreamAuthError)
            self.guard.record("failed" if server_fault else "neutral", time.perf_counter() - t0)
            raise
        self.guard.record("ok", time.perf_counter() - t0)
        return resp

    async def _get_once(
        self, url: str, params: dict[str, str], parse: Callable[[HttpResponse], T]
    ) -> T:
        crumb = await self.crumb()
        out: list[T] = []

        def check_and_parse(resp: HttpResponse) -> None:
            if resp.status == 401:
                self.invalidate_crumb(crumb)
            raise_for_response(resp)
            out.append(parse(resp))

        q = {**params, "crumb": crumb}
        await self._guarded(
            lambda: self._transport.get(url, q, self.settings.timeout_s), parse=check_and_parse
        )
        return out[0]

    async def get_with_retries(
        self, url: str, params: dict[str, str], parse: Callable[[HttpResponse], T]
    ) -> tuple[T, int]:
        """GET with crumb and ``parse`` the body, retrying both per the policy.

        Returns the parsed value and the number of attempts used. A 401 refreshes the crumb once
        without counting as an attempt; retryable errors (429, 5xx, network, malformed bodies)
        are retried with full-jitter backoff up to ``max_attempts`` attempts in all.
        """
        return await self._with_retries(lambda: self._get_once(url, params, parse))

    async def _with_retries(self, once: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        attempt = 0
        auth_refreshed = False
        while True:
            try:
                return await once(), attempt + 1
            except UpstreamAuthError:
                if auth_refreshed:
                    raise
                auth_refreshed = True
                continue
            except UpstreamError as exc:
                attempt += 1
                if not exc.retryable or attempt >= self.settings.max_attempts:
                    raise
                delay = full_jitter(
                    attempt - 1,
                    base_s=self.settings.backoff_base_s,
                    cap_s=self.settings.backoff_max_s,
                    rand=self._rand,
                    retry_after_s=getattr(exc, "retry_after_s", None),
                )
                metrics.record_retry(exc.kind)
                log.debug(
                    "request_retrying",
                    extra={"error": exc.kind, "attempt": attempt, "delay_s": round(delay, 3)},
                )
                await self._sleep(delay)

    async def fetch_quotes(self, symbols: Sequence[str]) -> QuoteBatch:
        """One v7 batch (with retries). Raises :class:`UpstreamError` when it finally fails."""
        t0 = time.perf_counter()
        url = self.endpoints.query1 + QUOTE_PATH
        params = {
            "symbols": ",".join(symbols),
            "fields": QUOTE_FIELDS,
            "formatted": "false",
            "lang": "en-US",
            "region": "US",
        }
        batch, attempts = await self.get_with_retries(
            url, params, lambda r: decode_quotes(r.body, symbols, r.url)
        )
        batch.attempts = attempts
        batch.latency_s = time.perf_counter() - t0
        return batch

    # -- JSON POST (earnings calendar; added for engine/earnings/source.py) --------------------

    async def _post_once(
        self, url: str, params: dict[str, str], body: bytes, parse: Callable[[HttpResponse], T]
    ) -> T:
        crumb = await self.crumb()
        out: list[T] = []

        def check_and_parse(resp: HttpResponse) -> None:
            if resp.status == 401:
                self.invalidate_crumb(crumb)
            raise_for_response(resp)
            out.append(parse(resp))

        q = {**params, "crumb": crumb}
        await self._guarded(
            lambda: self._transport.post_json(url, q, body, self.settings.timeout_s),
            parse=check_and_parse,
        )
        return out[0]

    async def post_json_with_retries(
        self, url: str, params: dict[str, str], body: bytes, parse: Callable[[HttpResponse], T]
    ) -> tuple[T, int]:
        """POST ``body`` (JSON) with crumb and ``parse`` the answer: the policy of
        :meth:`get_with_retries` (one crumb refresh on 401, full-jitter backoff on retryable
        errors up to ``max_attempts``), through the guard like every other call."""
        return await self._with_retries(lambda: self._post_once(url, params, body, parse))
