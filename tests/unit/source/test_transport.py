"""engine.source.transport: one request path; library errors become UpstreamTransportError."""

from __future__ import annotations

import pytest

from engine.errors import UpstreamTransportError
from engine.source.transport import (
    JSON_BODY_HEADERS,
    HttpRequest,
    HttpResponse,
    Transport,
    make_transport,
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
