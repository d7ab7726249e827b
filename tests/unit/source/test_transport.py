"""engine.source.transport: one request path; library errors become UpstreamTransportError."""

from __future__ import annotations

from urllib.parse import quote

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from engine.errors import UpstreamTransportError
from engine.source.transport import (
    JSON_BODY_HEADERS,
    HttpRequest,
    HttpResponse,
    Transport,
    make_transport,
    query_value,
    with_query,
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


def test_unknown_transport_kind() -> None:
    with pytest.raises(ValueError, match="unknown transport"):
        make_transport("requests", impersonate="chrome", max_clients=1)


@pytest.mark.parametrize(
    "value",
    ["AAPL,MSFT,BRK-B", "^GSPC,EURUSD=X,BTC-USD", "a b/c?d&e#f%g+h", "crumb/x.y", "ÄPFEL,€", ""],
)
def test_query_values_are_encoded_as_urllib_quote_does(value: str) -> None:
    assert query_value(value) == quote(value, safe="")


def test_with_query_leaves_a_url_that_needs_quoting_to_the_library() -> None:
    assert with_query("http://h:1/v7/finance/quote", {"symbols": "A,^B", "crumb": "x/y"}) == (
        "http://h:1/v7/finance/quote?symbols=A%2C%5EB&crumb=x%2Fy"
    )
    assert with_query("http://h/v10/finance/quoteSummary/BRK-B", None) == (
        "http://h/v10/finance/quoteSummary/BRK-B"
    )
    assert with_query("http://h/v10/finance/quoteSummary/^GSPC", {"a": "b"}) is None


@pytest.mark.parametrize("path", ["/v7/finance/quote", "/v10/finance/quoteSummary/^GSPC"])
async def test_curl_cffi_sends_the_query_the_server_reads_back(path: str) -> None:
    """Encoded by us (or, for a path that needs quoting, by curl_cffi): the server decodes the
    same parameters either way."""
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
