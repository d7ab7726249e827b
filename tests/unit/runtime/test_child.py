"""The control pipe's reader on uvloop: whole messages, however large."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import struct
import threading
import time
from multiprocessing.connection import Connection

import msgspec
import pytest
import uvloop

from engine.runtime import ipc
from engine.runtime.child import ConnReader


def _send_slowly(conn: Connection, msg: ipc.Message) -> None:
    """``ipc.send``'s bytes (multiprocessing's framing), written in pieces with pauses: a
    sender descheduled half-way on a busy machine."""
    body = msgspec.msgpack.encode(msg)
    data = struct.pack("!i", len(body)) + body
    for i in range(0, len(data), 256 * 1024):
        os.write(conn.fileno(), data[i : i + 256 * 1024])
        time.sleep(0.02)


@pytest.mark.timeout(30)
def test_a_message_larger_than_the_socket_buffer_arrives_whole() -> None:
    """An Assign of 100,000 symbols is ~2 MB: it reaches the reader in pieces while the sender
    is still writing (uvloop made the descriptor non-blocking: the read of the rest failed
    and the child took it for the supervisor's end, 100k-symbol runs died at start-up)."""
    ours, theirs = mp.Pipe(duplex=True)
    symbols = [f"SYM{i:06d}.X1" for i in range(100_000)]
    big = ipc.Assign(
        generation=1,
        state_name="x",
        state_size=len(symbols),
        shards=[ipc.ShardAssignment(0, symbols, list(range(len(symbols))))],
    )

    async def main() -> list[ipc.Message | None]:
        reader = ConnReader(ours)
        sender = threading.Thread(
            target=lambda: [_send_slowly(theirs, m) for m in (big, big)], daemon=True
        )
        sender.start()
        got = [await asyncio.wait_for(reader.get(), 10)]
        if got[0] is not None:
            got.append(await asyncio.wait_for(reader.get(), 10))
            ipc.send(ours, ipc.Stop(grace_s=1.0))  # this end still sends whole messages too
        reader.close()
        return got

    got = uvloop.run(main())
    assert got == [big, big]
    assert ipc.recv(theirs) == ipc.Stop(grace_s=1.0)


@pytest.mark.timeout(10)
def test_end_of_pipe_is_none() -> None:
    ours, theirs = mp.Pipe(duplex=True)

    async def main() -> ipc.Message | None:
        reader = ConnReader(ours)
        theirs.close()
        return await asyncio.wait_for(reader.get(), 5)

    assert uvloop.run(main()) is None


def test_the_process_name_is_set_without_a_subprocess() -> None:
    """prctl through the interpreter's own libc symbols: no ldconfig subprocess (a fork of the
    child, at every start) as ctypes.util.find_library would run."""
    code = (
        "import subprocess, engine.runtime.child as c\n"
        "subprocess.Popen = None  # any subprocess would fail\n"
        "c._prctl(c.PR_SET_NAME, b'ingest-probe')\n"
        "print(open('/proc/self/comm').read().strip())\n"
    )
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ingest-probe"
