"""Cookie seeding and crumbs: ``GET /`` (fc.yahoo.com) and ``GET /v1/test/getcrumb``.

Flow: ``GET /`` answers 404 but sets the ``A3`` cookie; getcrumb with a
known ``A3`` answers the session's 11-character crumb as ``text/plain`` (the same crumb until it
expires); data endpoints that need auth call :meth:`AuthStore.check` with the cookie and the
``crumb`` query parameter and answer 401 ``Invalid Cookie`` / ``Invalid Crumb`` on failure.

Crumbs are drawn from ``[A-Za-z0-9./]`` (``crumb_style=mixed``: about a third contain ``/`` or
``.``, which clients must URL-encode; ``plain`` never, ``special`` always). They expire
``crumb_ttl_s`` after issue (0 = never) or all at once through
``POST /_emulator/expire_crumbs``; getcrumb then issues a fresh one for the same cookie.
The cookie is host-only (no ``Domain``) and not ``Secure``, so a client rewritten to
``http://127.0.0.1:PORT`` keeps it.
"""

from __future__ import annotations

import random
import string
import time
from collections import OrderedDict
from email.utils import formatdate
from typing import Final, Protocol

from aiohttp import web

from yahoo_emulator.config import EmulatorConfig
from yahoo_emulator.faults import Faults
from yahoo_emulator.responses import (
    CACHE_CRUMB,
    CACHE_ERROR,
    FAULT,
    HTML_CT,
    TEXT_CT,
    base_headers,
    unauthorized,
)


class AuthView(Protocol):
    """What the cookie and crumb handlers use of the emulator
    (:class:`.state.Emulator` has it all)."""

    @property
    def cfg(self) -> EmulatorConfig: ...

    @property
    def auth(self) -> AuthStore: ...

    @property
    def faults(self) -> Faults: ...

    def now(self) -> float: ...


COOKIE_NAME: Final = "A3"
COOKIE_MAX_AGE: Final = 31_536_000
_ALNUM: Final = string.ascii_letters + string.digits
_CRUMB_CHARS: Final = _ALNUM + "./"
_COOKIE_CHARS: Final = _ALNUM + "_-"
INVALID_COOKIE: Final = "Invalid Cookie"
INVALID_CRUMB: Final = "Invalid Crumb"


def cookie_from_header(header: str | None) -> str | None:
    """The ``A3`` value of a ``Cookie`` header (parsed by hand: values contain ``=``/``&``)."""
    if not header:
        return None
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE_NAME:
            return value.strip().strip('"') or None
    return None


class _Session:
    __slots__ = ("crumb", "issued")

    def __init__(self) -> None:
        self.crumb: str | None = None
        self.issued = 0.0


class AuthStore:
    """Cookies issued and their crumbs (bounded; oldest sessions forgotten first)."""

    def __init__(self, seed: int, max_sessions: int = 100_000) -> None:
        self._rng = random.Random(seed * 104_729 + 3)
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._max = max_sessions
        self.cookies_issued = 0
        self.crumbs_issued = 0

    def new_cookie(self) -> str:
        r = self._rng
        value = (
            "d=AQABBK"
            + "".join(r.choice(_COOKIE_CHARS) for _ in range(40))
            + "&S=AQAAA"
            + "".join(r.choice(_COOKIE_CHARS) for _ in range(22))
        )
        self._sessions[value] = _Session()
        if len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        self.cookies_issued += 1
        return value

    def known(self, cookie: str) -> bool:
        return cookie in self._sessions

    def _new_crumb(self, style: str) -> str:
        r = self._rng
        chars = _ALNUM if style == "plain" else _CRUMB_CHARS
        crumb = [r.choice(chars) for _ in range(11)]
        if style == "special":
            i, j = r.sample(range(11), 2)
            crumb[i], crumb[j] = "/", "."
        return "".join(crumb)

    def crumb_for(self, cookie: str | None, now: float, cfg: EmulatorConfig) -> str | None:
        """The crumb of a known cookie (a new one if none or expired); None if unknown."""
        s = self._sessions.get(cookie) if cookie else None
        if s is None:
            return None
        if s.crumb is None or self._expired(s, now, cfg):
            s.crumb = self._new_crumb(cfg.crumb_style)
            s.issued = now
            self.crumbs_issued += 1
        return s.crumb

    @staticmethod
    def _expired(s: _Session, now: float, cfg: EmulatorConfig) -> bool:
        return cfg.crumb_ttl_s > 0 and now - s.issued >= cfg.crumb_ttl_s

    def check(
        self, cookie: str | None, crumb: str | None, now: float, cfg: EmulatorConfig
    ) -> str | None:
        """None when cookie and crumb are good, else the 401 description."""
        s = self._sessions.get(cookie) if cookie else None
        if s is None:
            return INVALID_COOKIE
        if not crumb or s.crumb is None or crumb != s.crumb or self._expired(s, now, cfg):
            return INVALID_CRUMB
        return None

    def expire_all(self) -> int:
        """Invalidate every crumb (cookies stay valid). Returns how many were live."""
        n = 0
        for s in self._sessions.values():
            if s.crumb is not None:
                s.crumb = None
                n += 1
        return n

    def __len__(self) -> int:
        return len(self._sessions)


def set_cookie_header(value: str, now: float) -> str:
    expires = formatdate(now + COOKIE_MAX_AGE, usegmt=True)
    return (
        f"{COOKIE_NAME}={value}; Expires={expires}; Max-Age={COOKIE_MAX_AGE}; Path=/; "
        "SameSite=Lax; HttpOnly"
    )


_NOT_FOUND_HTML: Final = (
    b"<!DOCTYPE html><html><head><title>404</title></head><body></body></html>\n"
)


def cookie_response(value: str, now: float) -> web.Response:
    """fc.yahoo.com: 404 that still sets ``A3``."""
    headers = base_headers(HTML_CT, cache=CACHE_ERROR)
    headers["Set-Cookie"] = set_cookie_header(value, now)
    return web.Response(status=404, body=_NOT_FOUND_HTML, headers=headers)


def crumb_response(text: str) -> web.Response:
    return web.Response(body=text.encode(), headers=base_headers(TEXT_CT, cache=CACHE_CRUMB))


def no_cookie_response(cfg: EmulatorConfig) -> web.Response:
    if cfg.getcrumb_no_cookie == "401":
        return unauthorized(INVALID_COOKIE)
    return crumb_response("")


# -- HTTP handlers -----------------------------------------------------------------------------


async def handle_cookie(emu: AuthView, request: web.Request) -> web.StreamResponse:
    """``GET /`` (fc.yahoo.com): 404 + ``Set-Cookie: A3`` (the client's own if still known)."""
    current = cookie_from_header(request.headers.get("Cookie"))
    value = current if current is not None and emu.auth.known(current) else emu.auth.new_cookie()
    return cookie_response(value, time.time())


async def handle_getcrumb(emu: AuthView, request: web.Request) -> web.StreamResponse:
    cfg = emu.cfg
    if emu.faults.crumb_text(cfg):
        request[FAULT] = "crumb_text"
        return crumb_response("Too Many Requests\r\n")
    cookie = cookie_from_header(request.headers.get("Cookie"))
    crumb = emu.auth.crumb_for(cookie, emu.now(), cfg)
    if crumb is None:
        return no_cookie_response(cfg)
    return crumb_response(crumb)
