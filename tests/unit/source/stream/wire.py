"""A minimal protobuf wire writer/reader for the tests, independent of the protobuf runtime.

It builds frames byte by byte from the fact sheet's field table (so a wrong field number or
type in :mod:`engine.source.stream.proto` cannot hide behind the same mistake in an encoder)
and reads the raw varints back (to show the zigzag trap).
"""

from __future__ import annotations

import struct


def varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def string(number: int, text: str) -> bytes:
    data = text.encode()
    return tag(number, 2) + varint(len(data)) + data


def float32(number: int, x: float) -> bytes:
    return tag(number, 5) + struct.pack("<f", x)


def double(number: int, x: float) -> bytes:
    return tag(number, 1) + struct.pack("<d", x)


def sint64(number: int, n: int) -> bytes:
    return tag(number, 0) + varint(zigzag(n))


def int32(number: int, n: int) -> bytes:
    return tag(number, 0) + varint(n)


def read_fields(data: bytes) -> dict[int, list[int | bytes]]:
    """field number -> raw values: varints as unsigned ints, the others as their bytes."""
    out: dict[int, list[int | bytes]] = {}
    i = 0

    def read_varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value

    while i < len(data):
        key = read_varint()
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == 0:
            value = read_varint()
        elif wire_type == 1:
            value, i = data[i : i + 8], i + 8
        elif wire_type == 5:
            value, i = data[i : i + 4], i + 4
        elif wire_type == 2:
            n = read_varint()
            value, i = data[i : i + n], i + n
        else:
            raise ValueError(f"wire type {wire_type}")
        out.setdefault(number, []).append(value)
    return out
