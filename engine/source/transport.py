"""HTTP transports for the Yahoo client: curl_cffi (default) and aiohttp.

Yahoo answers non-browser TLS clients with 429 since April 2025, so the default transport is
curl_cffi's ``AsyncSession(impersonate="chrome")``, which reproduces Chrome's TLS and HTTP/2
fingerprint. aiohttp is the alternative (e.g. behind a TLS-terminating proxy). Both keep the
cookie jar (Yahoo's ``A3`` cookie) for the life of the session, and both translate their library's
exceptions into :class:`~engine.errors.UpstreamTransportError` here, at this one boundary.

A transport has one request path, :meth:`Transport.request`, for GET (no body) and POST of a
JSON body alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal
from urllib.parse import quote

import msgspec

from engine.errors import UpstreamTransportError
from engine.runtime.lifecycle import AsyncResource

CHROME_HEADERS = {
    "Accept": "application/json,text/plain,*/*",
    "Accept-Language": "en-US,en;q=0.9",
}
JSON_BODY_HEADERS = {"Content-Type": "application/json"}

Method = Literal["GET", "POST"]

_UNRESERVED: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_PERCENT: Final = {c: f"%{c:02X}" for c in range(128) if c not in _UNRESERVED}
"""Every ASCII character but RFC 3986's unreserved ones, percent-encoded (``str.translate``)."""
_PLAIN_URL: Final = re.compile(r"[A-Za-z0-9\-._~:/%]*")


def query_value(value: str) -> str:
    """``value`` percent-encoded for a query string (UTF-8), as ``urllib.parse.quote`` with
    nothing safe does, in one ``str.translate`` when it is ASCII (its per-character Python
    loop cost more CPU than the rest of a v7 request)."""
    return value.translate(_PERCENT) if value.isascii() else quote(value, safe="")


def with_query(url: str, params: Mapping[str, str] | None) -> str | None:
    """``url?k=v&...`` fully encoded; None when ``url`` itself holds characters that still need
    quoting (the caller then lets the library encode it all)."""
    if not _PLAIN_URL.fullmatch(url):
        return None
    if not params:
        return url
    return url + "?" + "&".join(f"{query_value(k)}={query_value(v)}" for k, v in params.items())


class HttpResponse(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    content_type: str
    retry_after: str | None
    url: str


class HttpRequest(msgspec.Struct, frozen=True):
    method: Method
    url: str
    params: Mapping[str, str] | None
    timeout_s: float
    body: bytes | None = None  # JSON, sent with Content-Type: application/json

    @property
    def headers(self) -> dict[str, str] | None:
        return JSON_BODY_HEADERS if self.body is not None else None


class Transport(AsyncResource):
    """One HTTP client session; subclasses send a request with their library (:meth:`_send`)
    and name the library's exceptions (``_library_errors``), which :meth:`request` translates
    into :class:`~engine.errors.UpstreamTransportError`."""

    _library_errors: tuple[type[BaseException], ...] = ()

    async def request(
        self,
        method: Method,
        url: str,
        params: Mapping[str, str] | None,
        timeout_s: float,
        body: bytes | None = None,
    ) -> HttpResponse:
        """One HTTP exchange (GET without a body, POST with a JSON body)."""
        try:
            return await self._send(HttpRequest(method, url, params, timeout_s, body))
        except self._library_errors as exc:
            raise UpstreamTransportError(
                f"{method} {url.split('?')[0]} failed: {type(exc).__name__}: {exc}", url=url
            ) from exc

    async def _send(self, req: HttpRequest) -> HttpResponse:  # pragma: no cover - overridden
        raise NotImplementedError

    async def aclose(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class CurlCffiTransport(Transport):
    """curl_cffi AsyncSession impersonating a browser."""

    def __init__(self, *, impersonate: str, max_clients: int) -> None:
        from curl_cffi.requests import AsyncSession
        from curl_cffi.requests.exceptions import RequestException

        self._library_errors = (RequestException,)
        self._session: Any = AsyncSession(
            impersonate=impersonate, max_clients=max(1, max_clients), headers=CHROME_HEADERS
        )
        self._closed = False

    async def _send(self, req: HttpRequest) -> HttpResponse:
        # the query encoded once, here, and curl_cffi told not to encode again: its own
        # urlencode + requote of a 50-symbol query was a third of the CPU of a v7 request
        url = with_query(req.url, req.params)
        r = await self._session.request(
            req.method,
            req.url if url is None else url,
            params=dict(req.params) if req.params and url is None else None,
            data=req.body,
            headers=req.headers,
            timeout=req.timeout_s,
            allow_redirects=True,
            quote="" if url is None else False,
        )
        return HttpResponse(
            status=int(r.status_code),
            body=bytes(r.content),
            content_type=str(r.headers.get("content-type") or ""),
            retry_after=r.headers.get("retry-after"),
            url=req.url,
        )

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._session.close()


class AiohttpTransport(Transport):
    """aiohttp ClientSession with browser-like headers (no TLS impersonation)."""

    USER_AGENT = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    )

    def __init__(self, *, max_clients: int) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._library_errors = (aiohttp.ClientError, TimeoutError)
        self._session = aiohttp.ClientSession(
            headers={**CHROME_HEADERS, "User-Agent": self.USER_AGENT},
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # accept cookies from IP origins too
            connector=aiohttp.TCPConnector(limit=max(1, max_clients)),
        )

    async def _send(self, req: HttpRequest) -> HttpResponse:
        async with self._session.request(
            req.method,
            req.url,
            params=req.params,
            data=req.body,
            headers=req.headers,
            timeout=self._aiohttp.ClientTimeout(total=req.timeout_s),
        ) as r:
            return HttpResponse(
                status=r.status,
                body=await r.read(),
                content_type=r.headers.get("Content-Type", ""),
                retry_after=r.headers.get("Retry-After"),
                url=req.url,
            )

    async def aclose(self) -> None:
        await self._session.close()


def make_transport(kind: str, *, impersonate: str, max_clients: int) -> Transport:
    if kind == "curl_cffi":
        return CurlCffiTransport(impersonate=impersonate, max_clients=max_clients)
    if kind == "aiohttp":
        return AiohttpTransport(max_clients=max_clients)
    raise ValueError(f"unknown transport {kind!r}")
