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

import asyncio
import re
from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any, Final, Literal
from urllib.parse import quote

import msgspec

from engine.errors import ConfigError, UpstreamTransportError
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


def full_url(url: str, params: Mapping[str, str] | None) -> str:
    """``url?k=v&...`` with the path and the query percent-encoded (a symbol in the path, such
    as ``/quoteSummary/^GSPC``, included)."""
    if not _PLAIN_URL.fullmatch(url):
        url = quote(url, safe=":/%?&=@+,;")
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
    """libcurl through curl_cffi's handle API, impersonating a browser.

    One handle per request slot (at most ``max_clients`` at a time), configured once: the
    browser's TLS and HTTP/2 fingerprint and headers (``impersonate``), our headers,
    compression, redirects and libcurl's cookie engine. A request sets only its URL (the query
    encoded here, once), method, body and timeout, and reads the status, the content type and
    Retry-After back: curl_cffi's requests layer did the same work again for every request
    (option by option, headers and cookies re-parsed into Python objects), half of the CPU of
    a v7 request. The cookies (Yahoo's ``A3``) are one jar for the transport: when an answer
    sets one, the handle's cookie list becomes the jar, and a handle whose copy is older takes
    the jar again before its next request.
    """

    _ACCEPT_ENCODING: Final = b"gzip, deflate, br, zstd"

    def __init__(self, *, impersonate: str, max_clients: int) -> None:
        from curl_cffi import AsyncCurl, Curl, CurlError, CurlInfo, CurlOpt
        from curl_cffi.requests.impersonate import resolve_latest_browser_type

        self._library_errors = (CurlError,)
        self._Curl, self._AsyncCurl, self._opt, self._info = Curl, AsyncCurl, CurlOpt, CurlInfo
        resolve: Callable[[str], object] = resolve_latest_browser_type  # "chrome" -> newest
        self._impersonate = str(resolve(impersonate))
        self._headers = [f"{k}: {v}".encode() for k, v in CHROME_HEADERS.items()]
        self._json_headers = self._headers + [
            f"{k}: {v}".encode() for k, v in JSON_BODY_HEADERS.items()
        ]
        self._slots = asyncio.Semaphore(max(1, max_clients))
        self._idle: list[Any] = []
        self._multi: Any = None  # made in the running loop, at the first request
        self._jar: list[bytes] = []  # Netscape cookie lines
        self._jar_version = 0
        self._handle_jar: dict[int, int] = {}  # id(handle) -> the jar version it holds
        self._handle_method: dict[int, Method] = {}  # id(handle) -> whose headers it has
        self._closed = False
        self._idle.append(self._new_handle())  # an unknown browser fails here, at start

    def _new_handle(self) -> Any:
        opt = self._opt
        c = self._Curl()
        if c.impersonate(self._impersonate, default_headers=True) != 0:
            c.close()
            raise ConfigError(
                f"yahoo.impersonate {self._impersonate!r} is not a browser curl_cffi can "
                "impersonate: use e.g. 'chrome'",
                key="yahoo.impersonate",
            )
        c.setopt(opt.COOKIEFILE, b"")  # the cookie engine on, nothing read from disk
        c.setopt(opt.ACCEPT_ENCODING, self._ACCEPT_ENCODING)
        c.setopt(opt.FOLLOWLOCATION, 1)
        c.setopt(opt.MAXREDIRS, 30)
        c.setopt(opt.NOSIGNAL, 1)
        self._handle_jar[id(c)] = -1
        return c

    def _sync_jar(self, c: Any) -> None:
        if self._handle_jar.get(id(c)) == self._jar_version:
            return
        c.setopt(self._opt.COOKIELIST, b"ALL")  # forget this handle's own copy
        for line in self._jar:
            c.setopt(self._opt.COOKIELIST, line)
        self._handle_jar[id(c)] = self._jar_version

    def _use_headers(self, c: Any, method: Method) -> None:
        """Our headers for ``method`` on ``c`` (set when its method changes: curl_cffi appends
        every HTTPHEADER set to the handle's list, so setting it per request would repeat them)."""
        if self._handle_method.get(id(c)) == method:
            return
        c.clean_handles_and_buffers()  # drops the previous header list
        c.setopt(self._opt.HTTPHEADER, self._json_headers if method == "POST" else self._headers)
        self._handle_method[id(c)] = method

    def _drop(self, c: Any) -> None:
        self._handle_jar.pop(id(c), None)
        self._handle_method.pop(id(c), None)
        c.close()

    async def _send(self, req: HttpRequest) -> HttpResponse:
        if self._closed:
            raise RuntimeError("transport closed")
        if self._multi is None:
            self._multi = self._AsyncCurl()
        opt, info = self._opt, self._info
        async with self._slots:
            c = self._idle.pop() if self._idle else self._new_handle()
            self._sync_jar(c)
            self._use_headers(c, req.method)  # first: it drops the handle's buffer references
            body, head = BytesIO(), BytesIO()
            c.setopt(opt.URL, full_url(req.url, req.params).encode())
            c.setopt(opt.TIMEOUT_MS, max(1, int(req.timeout_s * 1000)))
            c.setopt(opt.WRITEDATA, body)
            c.setopt(opt.HEADERDATA, head)
            if req.method == "POST":
                c.setopt(opt.POSTFIELDS, req.body or b"")
                c.setopt(opt.POSTFIELDSIZE, len(req.body or b""))
            else:
                c.setopt(opt.HTTPGET, 1)
            try:
                await self._multi.add_handle(c)
            except BaseException:
                self._multi.remove_handle(c)  # cancelled or failed: this handle is not reused
                self._drop(c)
                raise
            status = int(c.getinfo(info.RESPONSE_CODE))
            ctype = c.getinfo(info.CONTENT_TYPE)
            headers = head.getvalue()
            if b"\nset-cookie:" in headers.lower():  # the jar changed: this handle has it all
                self._jar = [bytes(x) for x in c.getinfo(info.COOKIELIST)]
                self._jar_version += 1
                self._handle_jar[id(c)] = self._jar_version
            self._idle.append(c)
        return HttpResponse(
            status=status,
            body=body.getvalue(),
            content_type=ctype.decode("latin-1") if isinstance(ctype, bytes) else "",
            retry_after=_last_header(headers, b"retry-after"),
            url=req.url,
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._multi is not None:
            await self._multi.close()
        for c in self._idle:
            self._drop(c)
        self._idle.clear()


def _last_header(raw: bytes, name: bytes) -> str | None:
    """``name``'s value in the last response of ``raw`` (header blocks of every response a
    redirect went through, each starting with its status line)."""
    value = None
    for line in raw.split(b"\r\n"):
        if line[:5] == b"HTTP/":
            value = None  # a new response: what the previous ones said does not count
        else:
            k, sep, v = line.partition(b":")
            if sep and k.strip().lower() == name:
                value = v.strip().decode("latin-1")
    return value


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


def preload(kind: str) -> None:
    """Import ``kind``'s HTTP library now (the supervisor, before it forks the workers: each
    would import it again, a few hundred milliseconds of CPU at every start)."""
    if kind == "curl_cffi":
        import curl_cffi.requests.impersonate  # noqa: F401
    elif kind == "aiohttp":
        import aiohttp  # noqa: F401


def make_transport(kind: str, *, impersonate: str, max_clients: int) -> Transport:
    if kind == "curl_cffi":
        return CurlCffiTransport(impersonate=impersonate, max_clients=max_clients)
    if kind == "aiohttp":
        return AiohttpTransport(max_clients=max_clients)
    raise ValueError(f"unknown transport {kind!r}")
