"""One Yahoo session: the cookie jar and crumb, and every request made with them.

Hosts: cookie seeding on ``fc.yahoo.com`` (answers 404 but sets the ``A3`` cookie), ``query1``
for getcrumb and v7 quote, ``query2`` for quoteSummary/chart. With ``yahoo.base_url`` set (the
emulator), that one origin replaces every host.

Each request (GET, or POST of a JSON body) goes through the shared guard (rate limiter and
circuit breaker) and reports its outcome to it; its answer is translated into
:mod:`engine.errors` types (:mod:`engine.source.responses`). The policy around it:

* 401 (Invalid Crumb/Cookie) -> drop the crumb, fetch a new cookie + crumb once, retry.
* 429, 5xx, network errors, HTML/truncated bodies -> retried by :func:`engine.retry.retry` with
  full-jitter exponential backoff, at most ``max_attempts`` attempts in all; Retry-After honoured
  when Yahoo sends one.
* getcrumb answering ``Too Many Requests`` (as the crumb text) -> :class:`RateLimitedError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Final, Self, TypeVar

import msgspec

from engine.config import YahooSettings
from engine.errors import RateLimitedError, UpstreamAuthError, UpstreamError
from engine.observe import metrics
from engine.retry import RetryPolicy, retry
from engine.source.guard import CallOutcome, Guard, NullGuard
from engine.source.responses import check_cookie_answer, raise_for_response
from engine.source.transport import HttpResponse, Method, Transport, make_transport

log = logging.getLogger(__name__)

COOKIE_URL: Final = "https://fc.yahoo.com/"
QUERY1: Final = "https://query1.finance.yahoo.com"
QUERY2: Final = "https://query2.finance.yahoo.com"
CRUMB_PATH: Final = "/v1/test/getcrumb"

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


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


def _usable_crumb(text: str) -> bool:
    return bool(text) and "<" not in text and len(text) <= 64 and not any(c.isspace() for c in text)


def _retried_here(exc: BaseException) -> bool:
    """Retryable upstream trouble; a 401 is handled by the one crumb refresh instead."""
    return (
        isinstance(exc, UpstreamError) and exc.retryable and not isinstance(exc, UpstreamAuthError)
    )


def _on_retry(attempt: int, exc: BaseException, delay: float) -> None:
    kind = exc.kind if isinstance(exc, UpstreamError) else type(exc).__name__
    metrics.record_retry(kind)
    log.debug(
        "request_retrying",
        extra={"error_kind": kind, "attempt": attempt, "delay_s": round(delay, 3)},
    )


class YahooSession:
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
        self._policy = RetryPolicy(
            attempts=settings.max_attempts,
            base_s=settings.backoff_base_s,
            cap_s=settings.backoff_max_s,
        )
        self._crumb: str | None = None
        self._crumb_lock = asyncio.Lock()
        self._last_crumb_fetch = -1e18
        self._closed = False
        self.crumb_refreshes = 0

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, settings: YahooSettings, *, max_clients: int | None = None, guard: Guard | None = None
    ) -> AsyncIterator[Self]:
        transport = make_transport(
            settings.transport,
            impersonate=settings.impersonate,
            max_clients=max_clients or settings.max_in_flight,
        )
        session = cls(settings, transport, guard=guard)
        try:
            yield session
        finally:
            await session.aclose()

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
        # 404 + Set-Cookie: A3 is the expected answer; a 429 or 5xx is not (without this
        # check a 429 here counted as a success for the rate limiter, and getcrumb went on
        # without a cookie, spending a second request on an empty crumb)
        await self._guarded("GET", self.endpoints.cookie, None, None, check_cookie_answer)
        resp = await self._guarded(
            "GET", self.endpoints.query1 + CRUMB_PATH, None, None, raise_for_response
        )
        text = resp.body.decode("utf-8", "replace").strip()
        if "Too Many Requests" in text:
            self.guard.record(CallOutcome.THROTTLED, 0.0)
            raise RateLimitedError("getcrumb answered 'Too Many Requests'", url=resp.url)
        if not _usable_crumb(text):
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
        method: Method,
        url: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        check: Callable[[HttpResponse], object],
    ) -> HttpResponse:
        """One HTTP call through the shared rate limiter and breaker, its outcome reported.

        ``check`` raises for an answer that is a failure (and may parse it on the way)."""
        await self.guard.acquire()
        t0 = time.perf_counter()
        try:
            resp = await self._transport.request(method, url, params, self.settings.timeout_s, body)
            check(resp)
        except RateLimitedError as exc:
            self.guard.record(CallOutcome.THROTTLED, time.perf_counter() - t0, exc.retry_after_s)
            raise
        except UpstreamError as exc:
            server_fault = exc.retryable and not isinstance(exc, UpstreamAuthError)
            outcome = CallOutcome.FAILED if server_fault else CallOutcome.NEUTRAL
            self.guard.record(outcome, time.perf_counter() - t0)
            raise
        self.guard.record(CallOutcome.OK, time.perf_counter() - t0)
        return resp

    async def _once(
        self,
        method: Method,
        url: str,
        params: Mapping[str, str],
        body: bytes | None,
        parse: Callable[[HttpResponse], T],
    ) -> T:
        """One attempt with the current crumb; a 401 drops that crumb."""
        crumb = await self.crumb()
        out: list[T] = []

        def check_and_parse(resp: HttpResponse) -> None:
            if resp.status == 401:
                self.invalidate_crumb(crumb)
            raise_for_response(resp)
            out.append(parse(resp))

        await self._guarded(method, url, {**params, "crumb": crumb}, body, check_and_parse)
        return out[0]

    async def request_with_retries(
        self,
        method: Method,
        url: str,
        params: Mapping[str, str],
        parse: Callable[[HttpResponse], T],
        body: bytes | None = None,
    ) -> tuple[T, int]:
        """Send with crumb and ``parse`` the answer, retrying both per the policy.

        Returns the parsed value and the number of attempts used. A 401 refreshes the crumb once
        without counting as an attempt; retryable errors (429, 5xx, network, malformed bodies)
        are retried with full-jitter backoff up to ``max_attempts`` attempts in all.
        """
        attempts = 0
        auth_refreshed = False

        async def attempt() -> T:
            nonlocal attempts, auth_refreshed
            attempts += 1
            try:
                return await self._once(method, url, params, body, parse)
            except UpstreamAuthError:
                if auth_refreshed:
                    raise
                auth_refreshed = True
                return await self._once(method, url, params, body, parse)

        value = await retry(
            attempt,
            self._policy,
            retryable=_retried_here,
            on_retry=_on_retry,
            sleep=self._sleep,
            rand=self._rand,
        )
        return value, attempts

    async def get_with_retries(
        self, url: str, params: Mapping[str, str], parse: Callable[[HttpResponse], T]
    ) -> tuple[T, int]:
        """GET: :meth:`request_with_retries`."""
        return await self.request_with_retries("GET", url, params, parse)

    async def post_json_with_retries(
        self, url: str, params: Mapping[str, str], body: bytes, parse: Callable[[HttpResponse], T]
    ) -> tuple[T, int]:
        """POST of a JSON ``body``: :meth:`request_with_retries`."""
        return await self.request_with_retries("POST", url, params, parse, body)
