"""Yahoo-shaped HTTP answers shared by all endpoint modules.

* JSON bodies carry the headers of the recorded Yahoo answers: ``server:
  ATS``, ``content-type: application/json;charset=utf-8``, ``vary: Origin,Accept-Encoding``, a
  ``y-rid``, ``x-envoy-decorator-operation`` naming the backend, the endpoint's
  ``cache-control`` and ``x-envoy-upstream-service-time``.
* Errors use the ``{"<root>": {"result": null, "error": {"code", "description"}}}`` envelope
  (``finance`` for auth and generic errors, ``chart`` for chart errors).
* 429 is plain text ``Too Many Requests\\r\\n`` (configurable), without ``Retry-After`` unless
  the ``retry_after_s`` knob asks for one. The outage page is HTML containing "Will be right
  back".
"""

from __future__ import annotations

import itertools
from typing import Final

import orjson
from aiohttp import web

from yahoo_emulator.config import EmulatorConfig

JSON_CT: Final = "application/json;charset=utf-8"
TEXT_CT: Final = "text/plain;charset=utf-8"
HTML_CT: Final = "text/html;charset=utf-8"

OP_QUOTE: Final = "finance-quote-api--mtls-production-emu.finance-k8s:4080/*"
OP_CHART: Final = "finance-chart-api--mtls-production-emu.finance-k8s:4080/*"
OP_CRUMB: Final = "finance-crumb-api--mtls-production-emu.finance-k8s:4080/*"

CACHE_QUOTE: Final = "public, max-age=1, stale-while-revalidate=9"
CACHE_CHART: Final = "public, max-age=10, stale-while-revalidate=20"
CACHE_ERROR: Final = "max-age=0, private"
CACHE_CRUMB: Final = "private, max-age=60, stale-while-revalidate=30"

# per-request notes handlers leave for the edge middleware (stats, access log)
N_SYMBOLS: Final = web.RequestKey("n_symbols", int)
FAULT: Final = web.RequestKey("fault", str)

_rid = itertools.count(0x5F1D2C3B4A)
_B36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


def request_id() -> str:
    n = next(_rid) * 2654435761 % (36**13)
    out = []
    for _ in range(13):
        n, r = divmod(n, 36)
        out.append(_B36[r])
    return "".join(out)


def base_headers(content_type: str, *, cache: str, operation: str | None = None) -> dict[str, str]:
    h = {
        "Content-Type": content_type,
        "Server": "ATS",
        "Cache-Control": cache,
        "Vary": "Origin,Accept-Encoding",
        "Y-Rid": request_id(),
        "X-Content-Type-Options": "nosniff",
    }
    if operation is not None:
        h["X-Envoy-Decorator-Operation"] = operation
        h["X-Envoy-Upstream-Service-Time"] = "4"
    return h


def json_response(body: bytes, *, operation: str, cache: str, status: int = 200) -> web.Response:
    return web.Response(
        body=body, status=status, headers=base_headers(JSON_CT, cache=cache, operation=operation)
    )


def envelope(root: str, code: str, description: str) -> bytes:
    return orjson.dumps(
        {root: {"result": None, "error": {"code": code, "description": description}}}
    )


def error_response(
    status: int, code: str, description: str, *, root: str = "finance", operation: str = OP_QUOTE
) -> web.Response:
    return json_response(
        envelope(root, code, description), status=status, operation=operation, cache=CACHE_ERROR
    )


def unauthorized(description: str) -> web.Response:
    """401 ``Invalid Crumb`` / ``Invalid Cookie`` (the v7 quote auth failures)."""
    return error_response(401, "Unauthorized", description)


def too_many_requests(cfg: EmulatorConfig) -> web.Response:
    headers = base_headers(TEXT_CT, cache=CACHE_ERROR)
    if cfg.retry_after_s is not None:
        headers["Retry-After"] = str(cfg.retry_after_s)
    return web.Response(body=cfg.rate_limit_body.encode(), status=429, headers=headers)


OUTAGE_HTML: Final = (
    b'<!DOCTYPE html>\n<html lang="en-us"><head><meta charset="utf-8">'
    b'<title>Yahoo</title></head><body><div id="message"><h1>Will be right back...</h1>'
    b"<p>Thank you for your patience.</p><p>Our engineers are working quickly to resolve the "
    b"issue.</p></div></body></html>\n"
)


def html_outage(status: int) -> web.Response:
    return web.Response(
        body=OUTAGE_HTML, status=status, headers=base_headers(HTML_CT, cache=CACHE_ERROR)
    )


_REASONS: Final = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def server_error(status: int) -> web.Response:
    """500 as the JSON envelope (backend error); 502-504 as the edge's plain text."""
    reason = _REASONS.get(status, "Internal Server Error")
    if status == 500:
        return error_response(500, reason, "Internal Server Error")
    return web.Response(
        body=f"{reason}\r\n".encode(),
        status=status,
        headers=base_headers(TEXT_CT, cache=CACHE_ERROR),
    )


def uri_too_long() -> web.Response:
    return web.Response(
        body=b"URI Too Long\r\n", status=414, headers=base_headers(TEXT_CT, cache=CACHE_ERROR)
    )
