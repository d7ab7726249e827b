"""engine.source.responses: Yahoo's answers mapped onto the error tree by status and shape."""

from __future__ import annotations

import pytest

from engine.errors import (
    RateLimitedError,
    UpstreamAuthError,
    UpstreamPayloadError,
    UpstreamServerError,
    UpstreamStatusError,
)
from engine.source.responses import check_cookie_answer, error_text, raise_for_response
from engine.source.transport import HttpResponse


def resp(
    status: int, body: bytes = b"{}", ctype: str = "application/json", after: str | None = None
) -> HttpResponse:
    return HttpResponse(status, body, ctype, after, "http://u")


@pytest.mark.parametrize(
    ("r", "error"),
    [
        (resp(429), RateLimitedError),
        (resp(403, b"Too Many Requests"), RateLimitedError),
        (resp(401), UpstreamAuthError),
        (resp(503), UpstreamServerError),
        (resp(404), UpstreamStatusError),
        (resp(200, b"<html>"), UpstreamPayloadError),
        (resp(200, b"{}", "text/html"), UpstreamPayloadError),
    ],
)
def test_raise_for_response(r: HttpResponse, error: type[Exception]) -> None:
    with pytest.raises(error):
        raise_for_response(r)


def test_a_json_200_passes() -> None:
    raise_for_response(resp(200))


def test_retry_after_is_kept_when_numeric() -> None:
    with pytest.raises(RateLimitedError) as ei:
        raise_for_response(resp(429, after="2.5"))
    assert ei.value.retry_after_s == 2.5
    with pytest.raises(RateLimitedError) as ei:
        raise_for_response(resp(429, after="Wed, 21 Oct 2015 07:28:00 GMT"))
    assert ei.value.retry_after_s is None


def test_error_text_quotes_yahoo_finance_error() -> None:
    r = resp(400, b'{"finance":{"error":{"code":"Bad Request","description":"no symbols"}}}')
    assert error_text(r) == "Bad Request: no symbols"
    assert error_text(resp(500, b"upstream down")) == "upstream down"


def test_cookie_answer_404_is_normal_429_is_not() -> None:
    check_cookie_answer(resp(404))
    with pytest.raises(RateLimitedError):
        check_cookie_answer(resp(429))
