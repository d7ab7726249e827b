"""testkit.services: which services do not answer, said in one line (no real services needed)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from testkit import free_port
from testkit.services import START_HINT, Missing, _reason, missing_message, missing_services


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says anything."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        yield int(srv.getsockname()[1])


@pytest.fixture
def chatty_port() -> Iterator[int]:
    """A port whose server greets with something that is not NATS."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"+PONG\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    srv.close()
    t.join(2)


def test_every_refused_service_is_named() -> None:
    port = free_port()
    missing = missing_services(
        f"nats://127.0.0.1:{port}",
        f"postgresql://u:s3cret@127.0.0.1:{port}/db",
        f"redis://127.0.0.1:{port}/0",
        timeout_s=2.0,
    )
    assert [m.service for m in missing] == ["NATS", "PostgreSQL", "Redis"]
    line = missing_message(missing)
    assert "\n" not in line and "s3cret" not in line
    assert line.startswith("services not answering: NATS at nats://127.0.0.1:")
    assert line.endswith(START_HINT) and "make setup" in line


def test_a_server_that_never_answers_times_out(silent_port: int) -> None:
    free = free_port()
    missing = missing_services(
        f"nats://127.0.0.1:{silent_port}",
        f"postgresql://u@127.0.0.1:{free}/db",
        f"redis://127.0.0.1:{free}/0",
        timeout_s=0.3,
    )
    assert missing[0] == Missing(
        "NATS", f"nats://127.0.0.1:{silent_port}", "no answer within the timeout"
    )


def test_a_server_that_is_not_nats_is_reported(chatty_port: int) -> None:
    free = free_port()
    missing = missing_services(
        f"nats://127.0.0.1:{chatty_port}",
        f"postgresql://u@127.0.0.1:{free}/db",
        f"redis://127.0.0.1:{free}/0",
        timeout_s=2.0,
    )
    assert missing[0].service == "NATS" and "not a NATS server" in missing[0].reason


def test_reasons_are_one_short_line() -> None:
    reason = _reason(ValueError("first line " + "x" * 500 + "\nsecond line"))
    assert reason.startswith("ValueError: first line") and reason.endswith("...")
    assert len(reason) == 120 and "\n" not in reason
    assert _reason(TimeoutError()) == "no answer within the timeout"
