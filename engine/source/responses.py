"""Yahoo's HTTP answers translated into the error tree (:mod:`engine.errors`).

* 429, or ``Too Many Requests`` as the body of a 4xx -> :class:`RateLimitedError` (Retry-After
  kept when Yahoo sends one);
* 401 (Invalid Crumb/Cookie) -> :class:`UpstreamAuthError`;
* other non-200 statuses -> :func:`~engine.errors.status_error` (5xx retryable, 4xx not);
* a 200 carrying an HTML page (an outage or consent page) -> :class:`UpstreamPayloadError`.

The message quotes Yahoo's own ``finance.error`` when the body has one.
"""

from __future__ import annotations

from typing import Final

import msgspec

from engine.errors import (
    RateLimitedError,
    UpstreamAuthError,
    UpstreamPayloadError,
    status_error,
)
from engine.source.transport import HttpResponse


class _FinanceError(msgspec.Struct):
    code: str = ""
    description: str = ""


class _FinanceBody(msgspec.Struct):
    error: _FinanceError | None = None


class _FinanceEnvelope(msgspec.Struct):
    finance: _FinanceBody | None = None


_finance_decoder: Final = msgspec.json.Decoder(_FinanceEnvelope)


def error_text(resp: HttpResponse) -> str:
    """Yahoo's ``code: description``, else the start of the body."""
    try:
        env = _finance_decoder.decode(resp.body)
    except msgspec.DecodeError:
        return resp.body[:80].decode("utf-8", "replace").strip()
    if env.finance and env.finance.error:
        return f"{env.finance.error.code}: {env.finance.error.description}"
    return ""


def retry_after_s(resp: HttpResponse) -> float | None:
    """Retry-After in seconds, when it is a number."""
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
        raise RateLimitedError(retry_after_s=retry_after_s(resp), url=url)
    if resp.status == 401:
        raise UpstreamAuthError(f"Yahoo refused the request: {error_text(resp)}", url=url)
    if resp.status != 200:
        raise status_error(
            f"Yahoo answered HTTP {resp.status}: {error_text(resp)}", status=resp.status, url=url
        )
    head = resp.body[:256].lstrip()
    if head[:1] == b"<" or "html" in resp.content_type:
        raise UpstreamPayloadError("Yahoo answered an HTML page instead of JSON (outage?)", url=url)


def check_cookie_answer(resp: HttpResponse) -> None:
    """The cookie call answers 404 (with Set-Cookie) normally; 429 and 5xx are failures."""
    if resp.status == 429 or resp.status >= 500:
        raise_for_response(resp)
