"""Cookie seeding, getcrumb and the v7 401 envelopes."""

from __future__ import annotations

import re

import yarl

from tests.emulator.conftest import SYMBOLS, FakeClock, Harness, MakeEmu

INVALID_CRUMB = {
    "finance": {"result": None, "error": {"code": "Unauthorized", "description": "Invalid Crumb"}}
}
INVALID_COOKIE = {
    "finance": {"result": None, "error": {"code": "Unauthorized", "description": "Invalid Cookie"}}
}


async def test_fc_yahoo_root_is_404_but_sets_a3(make_emu: MakeEmu) -> None:
    async with make_emu() as h:
        r = await h.get("/")
        assert r.status == 404
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("A3=d=AQABBK") and "Max-Age=31536000" in cookie
        assert "Domain" not in cookie and "Secure" not in cookie  # usable on http://127.0.0.1
        # the same client asking again keeps its cookie
        again = await h.get("/")
        assert again.headers["Set-Cookie"].split(";")[0] == cookie.split(";")[0]


async def test_getcrumb_with_cookie_gives_stable_11_char_crumb(make_emu: MakeEmu) -> None:
    async with make_emu() as h:
        await h.get("/")
        r = await h.get("/v1/test/getcrumb")
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain;charset=utf-8"
        assert re.fullmatch(r"[A-Za-z0-9./]{11}", r.text)
        assert (await h.get("/v1/test/getcrumb")).text == r.text
        assert h.stats()["crumbs_issued"] == 1 and h.stats()["cookies_issued"] == 1


async def test_getcrumb_without_cookie_empty_or_401(make_emu: MakeEmu) -> None:
    async with make_emu() as h:
        r = await h.get("/v1/test/getcrumb")
        assert r.status == 200 and r.body == b""
        h.emu.configure(getcrumb_no_cookie="401")
        r = await h.get("/v1/test/getcrumb")
        assert r.status == 401 and r.json() == INVALID_COOKIE


async def test_quote_needs_cookie_and_crumb(make_emu: MakeEmu) -> None:
    async with make_emu(market_state="REGULAR") as h:
        r = await h.quote(SYMBOLS)  # no cookie at all
        assert r.status == 401 and r.json() == INVALID_COOKIE
        assert r.headers["Content-Type"] == "application/json;charset=utf-8"
        await h.get("/")
        r = await h.quote(SYMBOLS)  # cookie, no crumb
        assert r.status == 401 and r.json() == INVALID_CRUMB
        await h.login()
        r = await h.quote(SYMBOLS, crumb="AAAAAAAAAAA")  # wrong crumb
        assert r.status == 401 and r.json() == INVALID_CRUMB
        assert (await h.quote(SYMBOLS)).status == 200
        assert h.stats()["requests"]["quote"] == {"401": 3, "200": 1}


async def test_crumb_of_another_cookie_is_rejected(make_emu: MakeEmu) -> None:
    async with make_emu(market_state="REGULAR") as h:
        crumb = await h.login()
        h.http.cookie_jar.clear()
        await h.get("/")  # a fresh cookie, no crumb issued for it yet
        r = await h.quote(SYMBOLS, crumb=crumb)
        assert r.status == 401 and r.json() == INVALID_CRUMB


async def test_special_crumb_accepted_raw_or_percent_encoded(make_emu: MakeEmu) -> None:
    async with make_emu(market_state="REGULAR", crumb_style="special") as h:
        crumb = await h.login()
        assert "/" in crumb and "." in crumb
        encoded = crumb.replace("/", "%2F").replace(".", "%2E")
        url = yarl.URL(f"{h.url}/v7/finance/quote?symbols=AAPL&crumb={encoded}", encoded=True)
        async with h.http.get(url) as r:
            assert r.status == 200
        assert (await h.quote("AAPL")).status == 200


async def test_plain_crumb_style_has_no_special_chars(make_emu: MakeEmu) -> None:
    async with make_emu(crumb_style="plain") as h:
        for _ in range(20):
            h.http.cookie_jar.clear()
            assert re.fullmatch(r"[A-Za-z0-9]{11}", await h.login())


async def test_crumb_ttl_expiry_then_new_crumb(make_emu: MakeEmu) -> None:
    clock = FakeClock()
    async with make_emu(clock=clock, market_state="REGULAR", crumb_ttl_s=60) as h:
        first = await h.login()
        clock.advance(59)
        assert (await h.quote("AAPL")).status == 200
        clock.advance(2)
        r = await h.quote("AAPL")
        assert r.status == 401 and r.json() == INVALID_CRUMB
        second = (await h.get("/v1/test/getcrumb")).text
        assert second != first
        assert (await h.quote("AAPL", crumb=second)).status == 200


async def test_expire_crumbs_on_demand(h: Harness) -> None:
    assert (await h.quote("AAPL")).status == 200
    r = await h.post("/_emulator/expire_crumbs")
    assert r.json() == {"expired": 1}
    assert (await h.quote("AAPL")).status == 401
    await h.login()
    assert (await h.quote("AAPL")).status == 200


async def test_auth_can_be_switched_off(make_emu: MakeEmu) -> None:
    async with make_emu(require_auth=False) as h:
        assert (await h.quote("AAPL")).status == 200
