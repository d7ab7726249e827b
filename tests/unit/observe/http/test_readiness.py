"""engine.observe.http.readiness: one check, the shared run, skipped checks, state changes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from engine.observe import metrics
from engine.observe.http.readiness import Readiness, breaker_result, run_check
from engine.source.breaker import BreakerState


@pytest.fixture(autouse=True)
def fresh_metrics() -> None:
    metrics.reset()


async def _ok(timeout_s: float) -> None:
    return None


async def _refused(timeout_s: float) -> None:
    raise ConnectionRefusedError("postgresql://user:secret@db/x refused")


async def _slow(timeout_s: float) -> None:
    await asyncio.sleep(10)


async def test_run_check_reports_a_class_name_never_a_message() -> None:
    ok = await run_check(_ok, 1.0, lambda: 0.0)
    assert ok.status == "ok" and ok.latency_ms == 0.0
    fail = await run_check(_refused, 1.0, lambda: 0.0)
    assert fail.doc() == {"status": "fail", "error": "ConnectionRefusedError"}
    slow = await run_check(_slow, 0.01, lambda: 0.0)
    assert slow.doc() == {"status": "fail", "error": "timeout"}


def test_breaker_result_fails_only_when_open() -> None:
    assert breaker_result(BreakerState.CLOSED).status == "ok"
    assert breaker_result(BreakerState.HALF_OPEN).doc() == {"status": "ok", "detail": "half_open"}
    assert breaker_result(BreakerState.OPEN).status == "fail"


async def test_run_reports_every_check_and_sets_dependency_up() -> None:
    r = Readiness(
        {"nats": _ok, "postgres": _refused, "redis": None}, lambda: BreakerState.CLOSED, 1.0
    )
    ready, doc = await r.run()
    assert not ready and doc["status"] == "not_ready"
    assert doc["checks"]["redis"] == {"status": "skipped", "detail": "disabled"}
    assert doc["checks"]["postgres"]["status"] == "fail"
    assert doc["checks"]["breaker"] == {"status": "ok", "detail": "closed"}
    reg = metrics.registry()
    assert reg.get_sample_value("ingestion_dependency_up", {"dependency": "nats"}) == 1
    assert reg.get_sample_value("ingestion_dependency_up", {"dependency": "postgres"}) == 0
    assert reg.get_sample_value("ingestion_dependency_up", {"dependency": "redis"}) is None


async def test_concurrent_callers_share_one_run() -> None:
    calls = 0

    async def counted(timeout_s: float) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)

    r = Readiness({"nats": counted}, lambda: BreakerState.CLOSED, 1.0)
    reports = await asyncio.gather(*(r.run() for _ in range(5)))
    assert calls == 1 and all(rep.ready for rep in reports)
    await r.run()
    assert calls == 2


async def test_a_state_change_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    state = {"check": _ok}

    async def check(timeout_s: float) -> None:
        await state["check"](timeout_s)

    r = Readiness({"nats": check}, lambda: BreakerState.CLOSED, 1.0)
    caplog.set_level(logging.INFO, logger="engine.observe.http.readiness")
    await r.run()
    state["check"] = _refused
    await r.run()
    await r.run()
    changes = [rec for rec in caplog.records if rec.getMessage() == "readiness_changed"]
    assert len(changes) == 1
    assert changes[0].levelno == logging.WARNING
    assert changes[0].__dict__["error_kind"] == "ConnectionRefusedError"


async def test_cancel_stops_a_run_in_progress() -> None:
    r = Readiness({"nats": _slow}, lambda: BreakerState.CLOSED, 30.0)
    caller = asyncio.create_task(r.run())
    await asyncio.sleep(0.01)
    await r.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await r.cancel()  # idempotent


class TestKeptConnection:
    """One connection kept between checks; a failure drops it, the next check opens anew."""

    async def test_reuses_reconnects_and_closes(self) -> None:
        from engine.observe.http.readiness import KeptConnection

        opened: list[dict[str, bool]] = []
        closed: list[dict[str, bool]] = []
        fail = [False]

        async def open_(_t: float) -> dict[str, bool]:
            conn = {"live": True}
            opened.append(conn)
            return conn

        async def ping(conn: dict[str, bool], _t: float) -> None:
            if fail[0]:
                raise OSError("gone")

        async def close(conn: dict[str, bool]) -> None:
            closed.append(conn)

        check = KeptConnection("x", open_, ping, close, is_live=lambda c: c["live"])
        for _ in range(5):
            await check(1.0)
        assert len(opened) == 1 and check.opened == 1
        fail[0] = True
        with pytest.raises(OSError):
            await check(1.0)
        fail[0] = False
        await check(1.0)
        assert len(opened) == 2 and closed == [opened[0]]
        opened[1]["live"] = False  # the library saw the server go
        await check(1.0)
        assert len(opened) == 3 and closed == opened[:2]
        await check.aclose()
        await check.aclose()
        assert closed == opened

    async def test_a_check_failed_keeps_the_working_connection(self) -> None:
        from engine.observe.http.readiness import KeptConnection, StreamMissing

        opened: list[object] = []
        missing = [True]

        async def open_(_t: float) -> object:
            opened.append(object())
            return opened[-1]

        async def ping(_conn: object, _t: float) -> None:
            if missing[0]:
                raise StreamMissing(["Q"])

        async def close(_conn: object) -> None:
            return None

        check = KeptConnection("x", open_, ping, close)
        for _ in range(3):
            with pytest.raises(StreamMissing):
                await check(1.0)
        missing[0] = False
        await check(1.0)
        assert len(opened) == 1


async def test_a_missing_stream_fails_with_a_detail_naming_it() -> None:
    from engine.observe.http.readiness import StreamMissing

    async def gone(_t: float) -> None:
        raise StreamMissing(["MARKET_QUOTES", "MARKET_DLQ"])

    result = await run_check(gone, 1.0, lambda: 0.0)
    assert result.doc() == {
        "status": "fail",
        "error": "StreamMissing",
        "detail": "stream MARKET_QUOTES, MARKET_DLQ does not exist",
    }
