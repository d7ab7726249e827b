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

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import msgspec

from engine.errors import UpstreamTransportError

CHROME_HEADERS = {
    "Accept": "application/json,text/plain,*/*",
    "Accept-Language": "en-US,en;q=0.9",
}
JSON_BODY_HEADERS = {"Content-Type": "application/json"}

Method = Literal["GET", "POST"]


class HttpResponse(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    content_type: str
    retry_after: str | None
    url: str


class Transport(Protocol):
    async def request(
        self,
        method: Method,
        url: str,
        params: Mapping[str, str] | None,
        timeout_s: float,
        body: bytes | None = None,
    ) -> HttpResponse:
        """One HTTP exchange; ``body`` (JSON) is sent with ``Content-Type: application/json``."""
        ...

    async def aclose(self) -> None: ...


def failed(method: str, url: str, exc: BaseException) -> UpstreamTransportError:
    """The library's exception ``exc`` as the engine's transport error."""
    return UpstreamTransportError(
        f"{method} {url.split('?')[0]} failed: {type(exc).__name__}: {exc}", url=url
    )


class _Closing:
    """``async with transport:`` closes it."""

    async def aclose(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        e: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class CurlCffiTransport(_Closing):
    """curl_cffi AsyncSession impersonating a browser."""

    def __init__(self, *, impersonate: str, max_clients: int) -> None:
        from curl_cffi.requests import AsyncSession

        self._session: Any = AsyncSession(
            impersonate=impersonate, max_clients=max(1, max_clients), headers=CHROME_HEADERS
        )
        self._closed = False

    async def request(
        self,
        method: Method,
        url: str,
        params: Mapping[str, str] | None,
        timeout_s: float,
        body: bytes | None = None,
    ) -> HttpResponse:
        from curl_cffi.requests.exceptions import RequestException

        try:
            r = await self._session.request(
                method,
                url,
                params=dict(params) if params else None,
                data=body,
                headers=JSON_BODY_HEADERS if body is not None else None,
                timeout=timeout_s,
                allow_redirects=True,
            )
        except RequestException as exc:
            raise failed(method, url, exc) from exc
        return HttpResponse(
            status=int(r.status_code),
            body=bytes(r.content),
            content_type=str(r.headers.get("content-type") or ""),
            retry_after=r.headers.get("retry-after"),
            url=url,
        )

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._session.close()


class AiohttpTransport(_Closing):
    """aiohttp ClientSession with browser-like headers (no TLS impersonation)."""

    USER_AGENT = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    )

    def __init__(self, *, max_clients: int) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._session = aiohttp.ClientSession(
            headers={**CHROME_HEADERS, "User-Agent": self.USER_AGENT},
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # accept cookies from IP origins too
            connector=aiohttp.TCPConnector(limit=max(1, max_clients)),
        )

    async def request(
        self,
        method: Method,
        url: str,
        params: Mapping[str, str] | None,
        timeout_s: float,
        body: bytes | None = None,
    ) -> HttpResponse:
        aiohttp = self._aiohttp
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                data=body,
                headers=JSON_BODY_HEADERS if body is not None else None,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as r:
                data = await r.read()
                return HttpResponse(
                    status=r.status,
                    body=data,
                    content_type=r.headers.get("Content-Type", ""),
                    retry_after=r.headers.get("Retry-After"),
                    url=url,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise failed(method, url, exc) from exc

    async def aclose(self) -> None:
        await self._session.close()


def make_transport(kind: str, *, impersonate: str, max_clients: int) -> Transport:
    if kind == "curl_cffi":
        return CurlCffiTransport(impersonate=impersonate, max_clients=max_clients)
    if kind == "aiohttp":
        return AiohttpTransport(max_clients=max_clients)
    raise ValueError(f"unknown transport {kind!r}")
