"""testkit.net: spare ports and waits."""

from __future__ import annotations

import socket

import pytest

from testkit import free_port, wait_for, wait_port


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_wait_port_returns_once_something_listens() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        wait_port(int(srv.getsockname()[1]), timeout=2)


def test_wait_port_times_out() -> None:
    with pytest.raises(TimeoutError, match="nothing listens"):
        wait_port(free_port(), timeout=0.1)


def test_wait_for() -> None:
    calls = iter([False, False, True])
    wait_for(lambda: next(calls), timeout=2, every=0.001)
    with pytest.raises(AssertionError, match=r"within 0\.05s"):
        wait_for(lambda: False, timeout=0.05, every=0.01)
