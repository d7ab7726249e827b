"""The exit-status table: the code follows it, and docs/errors.md shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.commands.exitcodes import ExitCode, markdown_table, once_exit
from engine.stats import CycleStats, FetchCounts, PublishCounts

ROOT = Path(__file__).resolve().parents[3]


def cycle(
    requested: int = 100,
    fetched: int = 100,
    *,
    failed: int = 0,
    missing: int = 0,
    refused: int = 0,
    outboxed: int = 0,
    published: int | None = None,
) -> CycleStats:
    f = FetchCounts(
        requested=requested, fetched=fetched, valid=fetched, failed=failed, missing=missing
    )
    p = PublishCounts(
        published=fetched if published is None else published, failed=refused, outboxed=outboxed
    )
    return CycleStats(cycle=1, fetch=f, publish=p)


def test_docs_table_is_the_codes_table() -> None:
    """docs/errors.md carries exactly the table rendered from ExitCode."""
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert markdown_table() in text, "regenerate with engine.commands.exitcodes.markdown_table()"


def test_codes_are_distinct_and_stable() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130]
    assert all(len(c.meaning) > 20 for c in ExitCode)


class TestRunOnce:
    def test_clean_cycle(self) -> None:
        assert once_exit(cycle()) is ExitCode.OK

    def test_yahoo_unreachable_is_not_success(self) -> None:
        """Issue 16: `run --once` with Yahoo unreachable exited 0 with fetched=0."""
        assert once_exit(cycle(fetched=0, failed=100)) is ExitCode.UNAVAILABLE

    def test_yahoo_answering_nothing_is_not_success(self) -> None:
        """Every symbol missing (Yahoo answered empty results), nothing failed: still 3."""
        assert once_exit(cycle(fetched=0, missing=100)) is ExitCode.UNAVAILABLE

    def test_outboxed_quotes_are_durable(self) -> None:
        """Issue 16: the first run after a NATS outage exited 1 though its quotes were safe
        in the outbox (replayed when NATS is back)."""
        assert once_exit(cycle(published=40, outboxed=60)) is ExitCode.OK

    def test_refused_messages(self) -> None:
        assert once_exit(cycle(refused=2, published=98)) is ExitCode.SINK_REFUSED

    def test_refusal_outranks_a_poor_fetch(self) -> None:
        assert once_exit(cycle(fetched=10, failed=90, refused=1)) is ExitCode.SINK_REFUSED

    def test_cycle_not_completed(self) -> None:
        assert once_exit(None) is ExitCode.FAILED

    def test_empty_request_is_not_success(self) -> None:
        assert once_exit(cycle(requested=0, fetched=0)) is ExitCode.UNAVAILABLE

    @pytest.mark.parametrize(
        ("fetched", "threshold", "expected"),
        [
            (95, 0.95, ExitCode.OK),
            (94, 0.95, ExitCode.UNAVAILABLE),
            (0, 0.0, ExitCode.OK),
            (99, 1.0, ExitCode.UNAVAILABLE),
            (100, 1.0, ExitCode.OK),
        ],
    )
    def test_threshold(self, fetched: int, threshold: float, expected: ExitCode) -> None:
        stats = cycle(fetched=fetched, missing=100 - fetched)
        assert once_exit(stats, min_fetched=threshold) is expected
