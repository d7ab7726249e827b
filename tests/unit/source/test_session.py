"""engine.source.session and engine.source.client against a scripted transport (no network)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import pytest

from engine.config import YahooSettings
from engine.errors import RateLimitedError, UpstreamAuthError, UpstreamServerError
from engine.source.client import QUOTE_PATH, YahooClient
from engine.source.guard import CallOutcome
from engine.source.session import CRUMB_PATH, Endpoints, YahooSession
from engine.source.transport import HttpResponse, Method, Transport

ORIGIN = "http://emu"


def resp(
    status: int, body: bytes = b"{}", url: str = "", retry_after: str | None = None
) -> HttpResponse:
    return HttpResponse(status, body, "application/json", retry_after, url)


class Scripted(Transport):
    """Answers the cookie and crumb calls itself; everything else from ``answers`` in order."""

    def __init__(self, answers: list[HttpResponse], crumbs: list[str] | None = None) -> None:
        self.answers = answers
        self.crumbs = crumbs or ["crumb1", "crumb2", "crumb3"]
        self.calls: list[tuple[Method, str, dict[str, str], bytes | None]] = []
        self.closed = 0

    async def _send(self, req: object) -> HttpResponse:  # pragma: no cover - request overridden
        raise NotImplementedError

    async def request(
        self,
        method: Method,
        url: str,
        params: Mapping[str, str] | None,
        timeout_s: float,
        body: bytes | None = None,
    ) -> HttpResponse:
        self.calls.append((method, url, dict(params or {}), body))
        if url == ORIGIN + "/":
            return resp(404, b"", url)
        if url == ORIGIN + CRUMB_PATH:
            return resp(200, self.crumbs.pop(0).encode(), url)
        return self.answers.pop(0)

    async def aclose(self) -> None:
        self.closed += 1


class RecordingGuard:
    def __init__(self) -> None:
        self.outcomes: list[CallOutcome] = []

    async def acquire(self) -> None:
        return None

    def record(
        self, outcome: CallOutcome, latency_s: float, retry_after_s: float | None = None
    ) -> None:
        self.outcomes.append(outcome)


SETTINGS = YahooSettings(base_url=ORIGIN, crumb_min_interval_s=0.0, max_attempts=3)


def session(t: Scripted, guard: RecordingGuard | None = None) -> tuple[YahooSession, list[float]]:
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    return YahooSession(SETTINGS, t, sleep=sleep, rand=lambda: 0.5, guard=guard), sleeps


def body_of(r: HttpResponse) -> bytes:
    return r.body


def test_endpoints_one_origin_or_yahoo() -> None:
    assert Endpoints.for_settings(SETTINGS) == Endpoints(ORIGIN + "/", ORIGIN, ORIGIN)
    assert Endpoints.for_settings(YahooSettings()).cookie == "https://fc.yahoo.com/"


async def test_get_and_post_share_one_path_with_the_crumb() -> None:
    """GET and POST go through the same request path, both with the crumb in the query."""
    t = Scripted([resp(200, b'{"a":1}'), resp(200, b'{"b":2}')])
    s, _ = session(t)
    got, attempts = await s.get_with_retries(ORIGIN + "/x", {"q": "1"}, body_of)
    assert (got, attempts) == (b'{"a":1}', 1)
    got, _ = await s.post_json_with_retries(ORIGIN + "/y", {}, b'{"p":1}', body_of)
    assert got == b'{"b":2}'
    sent = [c for c in t.calls if c[1] in (ORIGIN + "/x", ORIGIN + "/y")]
    assert sent == [
        ("GET", ORIGIN + "/x", {"q": "1", "crumb": "crumb1"}, None),
        ("POST", ORIGIN + "/y", {"crumb": "crumb1"}, b'{"p":1}'),
    ]


async def test_401_refreshes_the_crumb_once_without_counting_an_attempt() -> None:
    t = Scripted([resp(401), resp(200, b"ok")])
    s, sleeps = session(t)
    got, attempts = await s.get_with_retries(ORIGIN + "/x", {}, body_of)
    assert (got, attempts, sleeps, s.crumb_refreshes) == (b"ok", 1, [], 2)
    assert t.calls[-1][2]["crumb"] == "crumb2"


async def test_a_second_401_is_raised() -> None:
    t = Scripted([resp(401), resp(401)])
    s, _ = session(t)
    with pytest.raises(UpstreamAuthError):
        await s.get_with_retries(ORIGIN + "/x", {}, body_of)


async def test_retryable_errors_back_off_up_to_max_attempts() -> None:
    """5xx are retried with full-jitter backoff, then raised after max_attempts in all."""
    guard = RecordingGuard()
    t = Scripted([resp(503), resp(502), resp(500)])
    s, sleeps = session(t, guard)
    with pytest.raises(UpstreamServerError):
        await s.get_with_retries(ORIGIN + "/x", {}, body_of)
    base = SETTINGS.backoff_base_s
    assert sleeps == [base * 0.5, base * 2 * 0.5]
    assert guard.outcomes[-3:] == [CallOutcome.FAILED] * 3


async def test_retry_after_is_honoured_and_throttle_reported() -> None:
    guard = RecordingGuard()
    t = Scripted([resp(429, retry_after="3"), resp(200, b"ok")])
    s, sleeps = session(t, guard)
    got, attempts = await s.get_with_retries(ORIGIN + "/x", {}, body_of)
    assert (got, attempts, sleeps) == (b"ok", 2, [3.0])
    assert guard.outcomes[-2:] == [CallOutcome.THROTTLED, CallOutcome.OK]


async def test_crumb_text_too_many_requests_is_rate_limited() -> None:
    t = Scripted([], crumbs=["Too Many Requests"])
    s, _ = session(t)
    with pytest.raises(RateLimitedError):
        await s.crumb()


async def test_fetch_quotes_decodes_a_batch_and_counts_attempts() -> None:
    body = msgspec.json.encode(
        {
            "quoteResponse": {
                "result": [{"symbol": "AAPL", "regularMarketPrice": 1.5}],
                "error": None,
            }
        }
    )
    t = Scripted([resp(500), resp(200, body)])
    c = YahooClient(SETTINGS, t, sleep=lambda s: _nothing(), rand=lambda: 0.0)
    batch = await c.fetch_quotes(["AAPL", "NOPE"])
    assert [q.symbol for q in batch.quotes] == ["AAPL"]
    assert (batch.missing, batch.attempts) == (["NOPE"], 2)
    url, params = t.calls[-1][1], t.calls[-1][2]
    assert url == ORIGIN + QUOTE_PATH and params["symbols"] == "AAPL,NOPE"
    await c.aclose()
    await c.aclose()
    assert t.closed == 1


async def _nothing() -> None:
    return None
