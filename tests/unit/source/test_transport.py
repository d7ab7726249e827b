"""engine.source.transport: one request path; library errors become UpstreamTransportError."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from engine.errors import ConfigError, UpstreamTransportError
from engine.source.transport import (
    JSON_BODY_HEADERS,
    HttpRequest,
    HttpResponse,
    Transport,
    full_url,
    make_transport,
    query_value,
)


class LibraryError(Exception):
    pass


class Fake(Transport):
    _library_errors = (LibraryError,)

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[HttpRequest] = []
        self.closed = 0

    async def _send(self, req: HttpRequest) -> HttpResponse:
        self.sent.append(req)
        if self.fail:
            raise LibraryError("connection reset")
        return HttpResponse(200, b"{}", "application/json", None, req.url)

    async def aclose(self) -> None:
        self.closed += 1


async def test_get_and_post_are_one_request() -> None:
    async with Fake() as t:
        await t.request("GET", "http://h/a", {"x": "1"}, 1.0)
        await t.request("POST", "http://h/b", None, 1.0, b"{}")
    assert [(r.method, r.headers) for r in t.sent] == [("GET", None), ("POST", JSON_BODY_HEADERS)]
    assert t.closed == 1


async def test_library_errors_are_translated() -> None:
    with pytest.raises(UpstreamTransportError, match=r"GET http://h/a failed: LibraryError"):
        await Fake(fail=True).request("GET", "http://h/a?q=secret", None, 1.0)


def test_a_browser_curl_cffi_cannot_impersonate_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"yahoo\.impersonate 'netscape4'"):
        make_transport("curl_cffi", impersonate="netscape4", max_clients=1)


def test_unknown_transport_kind() -> None:
    with pytest.raises(ValueError, match="unknown transport"):
        make_transport("requests", impersonate="chrome", max_clients=1)


@pytest.mark.parametrize(
    "value",
    ["AAPL,MSFT,BRK-B", "^GSPC,EURUSD=X,BTC-USD", "a b/c?d&e#f%g+h", "crumb/x.y", "ÄPFEL,€", ""],
)
def test_query_values_are_encoded_as_urllib_quote_does(value: str) -> None:
    assert query_value(value) == quote(value, safe="")


def test_full_url_encodes_the_query_and_a_path_that_needs_it() -> None:
    assert full_url("http://h:1/v7/finance/quote", {"symbols": "A,^B", "crumb": "x/y"}) == (
        "http://h:1/v7/finance/quote?symbols=A%2C%5EB&crumb=x%2Fy"
    )
    assert full_url("http://h/v10/finance/quoteSummary/BRK-B", None) == (
        "http://h/v10/finance/quoteSummary/BRK-B"
    )
    assert full_url("http://h/v10/finance/quoteSummary/^GSPC", {"a": "b"}) == (
        "http://h/v10/finance/quoteSummary/%5EGSPC?a=b"
    )


@pytest.mark.parametrize("path", ["/v7/finance/quote", "/v10/finance/quoteSummary/^GSPC"])
async def test_curl_cffi_sends_the_query_the_server_reads_back(path: str) -> None:
    """Encoded here (the query, and a path that needs it): the server decodes the same path and
    parameters."""
    seen: list[tuple[str, dict[str, str]]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.query)))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    params = {"symbols": "AAPL,^GSPC,EURUSD=X,BRK-B", "crumb": "a/b.c", "fields": "x,y"}
    async with (
        TestServer(app) as server,
        make_transport("curl_cffi", impersonate="chrome", max_clients=1) as t,
    ):
        r = await t.request("GET", str(server.make_url(path)), params, 5.0)
    assert r.status == 200 and orjson.loads(r.body) == {}
    assert seen == [(path, params)]


async def test_curl_cffi_shares_cookies_follows_redirects_and_reads_retry_after() -> None:
    """The cookie one answer sets is sent by every handle (concurrent requests use several);
    a redirect is followed and only the final answer's headers count; a POST carries its JSON;
    a timeout and a refused connection are transport errors, and the transport goes on."""
    seen: list[tuple[str, str | None]] = []
    agents: set[str] = set()

    async def cookie(request: web.Request) -> web.Response:
        resp = web.Response(status=404, text="no page")
        resp.set_cookie("A3", "d=AQAB", path="/")
        return resp

    async def quote(request: web.Request) -> web.Response:
        names = [k.lower() for k, _ in request.raw_headers]
        assert names.count(b"accept") == 1 and b"content-type" not in names, names
        seen.append((request.path, request.cookies.get("A3")))
        agents.add(request.headers.get("User-Agent", ""))
        await asyncio.sleep(0.05)  # held open: the next requests need handles of their own
        return web.json_response({"n": request.query["n"]}, headers={"Retry-After": "7"})

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/q?n=9", headers={"Retry-After": "99"})

    async def post(request: web.Request) -> web.Response:
        names = [k.lower() for k, _ in request.raw_headers]
        assert names.count(b"accept") == names.count(b"content-type") == 1, names
        return web.json_response({"got": await request.json(), "ct": request.content_type})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/", cookie)
    app.router.add_get("/q", quote)
    app.router.add_get("/moved", moved)
    app.router.add_post("/p", post)
    app.router.add_get("/slow", slow)
    async with (
        TestServer(app) as server,
        make_transport("curl_cffi", impersonate="chrome", max_clients=4) as t,
    ):
        url = str(server.make_url(""))
        assert (await t.request("GET", url + "/", None, 5.0)).status == 404
        rs = await asyncio.gather(*(t.request("GET", url + "/q", {"n": str(i)}, 5.0)
                                    for i in range(4)))  # fmt: skip
        assert [orjson.loads(r.body)["n"] for r in rs] == ["0", "1", "2", "3"]
        assert all(r.retry_after == "7" and r.content_type.startswith("application/json")
                   for r in rs)  # fmt: skip
        assert seen == [("/q", "d=AQAB")] * 4  # every handle sent the cookie
        (agent,) = agents  # impersonating Chrome: its User-Agent, on every handle
        assert "Chrome/" in agent
        r = await t.request("GET", url + "/moved", None, 5.0)
        assert r.status == 200 and orjson.loads(r.body) == {"n": "9"} and r.retry_after == "7"
        for _ in range(2):  # a handle used for GET, then twice for POST: each header once
            p = await t.request("POST", url + "/p", None, 5.0, b'{"a": [1, 2]}')
            assert orjson.loads(p.body) == {"got": {"a": [1, 2]}, "ct": "application/json"}
        with pytest.raises(UpstreamTransportError, match=r"GET .*/slow failed"):
            await t.request("GET", url + "/slow", None, 0.2)
        with pytest.raises(TimeoutError):  # cancelled mid-request: the handle is dropped
            await asyncio.wait_for(t.request("GET", url + "/slow", None, 5.0), 0.1)
        assert (await t.request("GET", url + "/q", {"n": "5"}, 5.0)).status == 200
        with pytest.raises(UpstreamTransportError):
            await t.request("GET", "http://127.0.0.1:9/refused", None, 1.0)
