"""Helpers shared by the tests and the benches (not shipped: neither in the wheel nor the image).

* :mod:`testkit.processes` - the bundled Yahoo emulator and ``ingestion-agent`` as subprocesses;
* :mod:`testkit.jetstream` - read and delete JetStream streams;
* :mod:`testkit.servers` - a private redis-server / nats-server that a test can kill and restart;
* :mod:`testkit.net` - spare ports, waiting for a port or a condition;
* :mod:`testkit.scripts` - one of the repository's scripts loaded as a module.

Import the names from here: ``from testkit import EmulatorProcess, free_port``.
"""

from __future__ import annotations

from testkit.jetstream import create_refusing_stream, delete_streams, stream_messages
from testkit.net import free_port, wait_for, wait_port
from testkit.processes import ROOT, EmulatorProcess, EngineProcess
from testkit.scripts import load_script
from testkit.servers import OwnNats, OwnRedis

__all__ = [
    "ROOT",
    "EmulatorProcess",
    "EngineProcess",
    "OwnNats",
    "OwnRedis",
    "create_refusing_stream",
    "delete_streams",
    "free_port",
    "load_script",
    "stream_messages",
    "wait_for",
    "wait_port",
]
