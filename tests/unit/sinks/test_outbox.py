"""The durable outbox: whole segments, oldest first, across restarts; corrupt segments set aside."""

from __future__ import annotations

from pathlib import Path

from engine.records import OutMessage
from engine.sinks.outbox import SUFFIX, Outbox


def msgs(prefix: str, n: int, *, cycle: int = 1) -> list[OutMessage]:
    return [
        OutMessage(False, f"{prefix}{i}", f"payload-{prefix}{i}".encode(), cycle, "data.q")
        for i in range(n)
    ]


def ls(directory: Path, pattern: str = "*") -> list[Path]:
    return sorted(directory.glob(pattern))


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob(f"*{SUFFIX}"))


class TestOutbox:
    async def test_append_then_oldest_round_trips_messages(self, tmp_path: Path) -> None:
        """A segment comes back exactly as appended, subject included."""
        box = Outbox(tmp_path, 1 << 20)
        batch = msgs("a", 3)
        box.append(batch)
        item = await box.oldest()
        assert item is not None
        path, got, _ = item
        assert got == batch
        assert path.suffix == SUFFIX
        assert len(box) == 1

    async def test_empty_append_writes_nothing(self, tmp_path: Path) -> None:
        box = Outbox(tmp_path, 1 << 20)
        box.append([])
        assert len(box) == 0
        assert await box.oldest() is None
        assert ls(tmp_path) == []

    async def test_segments_come_out_oldest_first_and_remove_drops_them(
        self, tmp_path: Path
    ) -> None:
        box = Outbox(tmp_path, 1 << 20)
        box.append(msgs("a", 2))
        box.append(msgs("b", 2))
        first = await box.oldest()
        assert first is not None and first[1][0].msg_id == "a0"
        await box.remove(first[0])
        assert not first[0].exists()
        second = await box.oldest()
        assert second is not None and second[1][0].msg_id == "b0"
        await box.remove(second[0])
        assert len(box) == 0 and box.size_bytes == 0
        await box.remove(second[0])  # already gone: no error

    async def test_reopened_outbox_keeps_order_and_continues_numbering(
        self, tmp_path: Path
    ) -> None:
        """A restart finds the waiting segments in order, and appends behind them."""
        box = Outbox(tmp_path, 1 << 20)
        for p in "abc":
            box.append(msgs(p, 1))
        again = Outbox(tmp_path, 1 << 20)
        again.append(msgs("d", 1))
        order = []
        while (item := await again.oldest()) is not None:
            order.append(item[1][0].msg_id)
            await again.remove(item[0])
        assert order == ["a0", "b0", "c0", "d0"]

    async def test_leftover_temporary_file_is_discarded_on_open(self, tmp_path: Path) -> None:
        """A crash mid-append leaves a .tmp: that batch was never accepted."""
        (tmp_path / "000000000001.tmp").write_bytes(b"half a batch")
        box = Outbox(tmp_path, 1 << 20)
        assert len(box) == 0
        assert ls(tmp_path) == []

    async def test_corrupt_segment_is_set_aside_and_skipped(self, tmp_path: Path) -> None:
        box = Outbox(tmp_path, 1 << 20)
        box.append(msgs("a", 1))
        box.append(msgs("b", 1))
        first = ls(tmp_path, f"*{SUFFIX}")[0]
        first.write_bytes(b"\xc1 not msgpack")
        item = await box.oldest()
        assert item is not None and item[1][0].msg_id == "b0"
        assert first.with_suffix(".corrupt").exists()
        assert len(box) == 1
        assert box.size_bytes == item[0].stat().st_size

    async def test_room_and_size_follow_the_bytes_on_disk(self, tmp_path: Path) -> None:
        box = Outbox(tmp_path, 64)
        assert box.has_room() and box.size_bytes == 0
        box.append(msgs("a", 5))
        assert box.size_bytes == disk_bytes(tmp_path)
        assert not box.has_room()
        item = await box.oldest()
        assert item is not None
        await box.remove(item[0])
        assert box.has_room()

    async def test_count_messages_counts_every_segment(self, tmp_path: Path) -> None:
        box = Outbox(tmp_path, 1 << 20)
        box.append(msgs("a", 2))
        box.append(msgs("b", 3))
        assert box.count_messages() == 5
        assert Outbox(tmp_path, 1 << 20).count_messages() == 5
