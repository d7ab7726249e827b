"""Point yfinance (which has no base-URL setting) at the emulator.

yfinance accepts ``session=`` (a ``curl_cffi`` Session); this subclass rewrites every
``https://*.yahoo.com/...`` URL - cookie seeding, getcrumb, query1/query2 - to one origin, so a
yfinance user's own code runs unchanged against the emulator. Used by the fidelity tests and by
the benchmark's yfinance peer.

Cookies: real Yahoo sets ``A3`` with ``Domain=.yahoo.com``; an emulator on an IP origin cannot,
so its cookie lands in the jar under the origin's host. yfinance only caches (and so reuses) a
cookie filed under a ``yahoo`` domain - without one it fetches ``fc.yahoo.com`` again before
every request, an extra round trip real Yahoo never causes. So each cookie the origin sets is
also filed under ``.yahoo.com`` (the copy under the origin's host is the one curl sends).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import Any

from curl_cffi import requests as curl

_YAHOO = re.compile(r"^https?://(?P<host>(?:[A-Za-z0-9-]+\.)*yahoo\.com)(?=[/?]|$)")


class RewritingSession(curl.Session[curl.Response]):
    """A curl_cffi Session that sends every ``*.yahoo.com`` request to ``origin``."""

    def __init__(self, origin: str, **kwargs: Any) -> None:
        super().__init__(impersonate="chrome", **kwargs)
        self.origin = origin.rstrip("/")
        self.hosts: Counter[str] = Counter()

    def request(self, method: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        m = _YAHOO.match(url)
        if m is not None:
            self.hosts[m.group("host")] += 1
            url = self.origin + url[m.end() :]
        response = super().request(method, url, *args, **kwargs)
        if m is not None:
            self._file_under_yahoo()
        return response

    def _file_under_yahoo(self) -> None:
        jar = self.cookies.jar
        for c in list(jar):
            if c.domain.endswith("yahoo.com"):
                continue
            mirror = copy.copy(c)
            mirror.domain, mirror.domain_specified, mirror.domain_initial_dot = (
                ".yahoo.com", True, True,
            )  # fmt: skip
            jar.set_cookie(mirror)
