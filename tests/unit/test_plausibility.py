"""engine.plausibility: a price judged against its own reference; absolute bounds only without
one; a move beyond max_move held until a second read confirms it (pure; bounded memory)."""

from __future__ import annotations

import math

import pytest

from engine.config import ValidationSettings
from engine.plausibility import (
    CONFIRM_WITHIN_CYCLES,
    HeldMoves,
    Judgement,
    Reference,
    Verdict,
    judge_price,
    positive,
    reference,
)

RULES = ValidationSettings()
PREV_50 = Reference(50.0, 50.0, "previous close")


def judge(price: float, ref: Reference | None, held: float | None = None) -> Judgement:
    return judge_price(
        price,
        ref,
        min_price=RULES.min_price,
        max_price=RULES.max_price,
        max_move=RULES.max_move,
        held=held,
    )


class TestReference:
    def test_previous_close_first(self) -> None:
        assert reference(50, 48, 52, 30, 70) == PREV_50

    def test_then_the_day_range_then_the_52_week_range(self) -> None:
        assert reference(None, 48, 52.5, 30, 70) == Reference(48.0, 52.5, "day range")
        assert reference(0, None, 52, 30, 70) == Reference(30.0, 70.0, "52-week range")
        assert reference(None, None, None, None, None) is None

    @pytest.mark.parametrize(
        "bad", [0, -1, math.nan, math.inf, "50", True, None, [50], {"raw": 50}]
    )
    def test_unusable_values_are_no_reference(self, bad: object) -> None:
        """A reference is a finite number > 0: anything else is ignored, never trusted."""
        assert positive(bad) is None
        assert reference(bad, bad, bad, bad, bad) is None

    def test_an_inverted_range_is_no_reference(self) -> None:
        assert reference(None, 60, 40, None, None) is None


class TestJudgePrice:
    @pytest.mark.parametrize(
        ("price", "ref"),
        [
            (743_500.0, Reference(741_000.0, 741_000.0, "previous close")),  # BRK-A
            (0.0098, Reference(0.0101, 0.0101, "previous close")),  # SVREW
            (743_500.0, None),
            (0.0098, None),
            (0.0001, None),  # the absolute bounds are inclusive
            (10_000_000.0, None),
            (50 * 4.99, PREV_50),
            (50 / 4.99, PREV_50),
        ],
    )
    def test_real_listings_are_plausible(self, price: float, ref: Reference | None) -> None:
        """Issue 16: BRK-A (~$740,000) and SVREW (~$0.0098) pass, with or without reference."""
        assert judge(price, ref).verdict is Verdict.PLAUSIBLE

    @pytest.mark.parametrize(
        ("price", "ref"),
        [
            (0.0, PREV_50),
            (-3.0, PREV_50),
            (math.nan, PREV_50),
            (math.inf, PREV_50),
            (0.0, None),
            (1e9, PREV_50),  # 1e9 for a $50 stock: beyond max_move and the absolute bounds
            (1e308, PREV_50),
            (1e9, None),
            (0.00009, None),
        ],
    )
    def test_corrupted_prices_are_out_of_range(self, price: float, ref: Reference | None) -> None:
        j = judge(price, ref)
        assert j.verdict is Verdict.OUT_OF_RANGE and not j.ok
        assert j.detail.startswith(f"price={price:.10g}")

    def test_a_big_move_is_held_unconfirmed(self) -> None:
        """300 for a $50 stock is inside the absolute bounds but 6x its previous close."""
        j = judge(300.0, PREV_50)
        assert j.verdict is Verdict.UNCONFIRMED
        assert j.detail == (
            "price=300 is 6x the previous close 50; published if the next read confirms it"
        )
        down = judge(5.0, PREV_50)
        assert down.verdict is Verdict.UNCONFIRMED
        assert down.detail.startswith("price=5 is 1/10 of the previous close 50")

    def test_a_second_read_confirms_the_move(self) -> None:
        """The next read near the held price confirms it; one far from it does not."""
        assert judge(310.0, PREV_50, held=300.0).verdict is Verdict.CONFIRMED
        assert judge(310.0, PREV_50, held=300.0).ok
        assert judge(500.0, PREV_50, held=300.0).verdict is Verdict.UNCONFIRMED

    def test_confirmation_never_passes_the_absolute_bounds(self) -> None:
        """A corrupted value repeated every cycle (1e9, 1e308) is never confirmed."""
        assert judge(1e9, PREV_50, held=1e9).verdict is Verdict.OUT_OF_RANGE

    def test_the_band_follows_max_move(self) -> None:
        j = judge_price(120.0, PREV_50, min_price=0.01, max_price=1e6, max_move=2.0)
        assert j.verdict is Verdict.UNCONFIRMED
        j = judge_price(120.0, PREV_50, min_price=0.01, max_price=1e6, max_move=3.0)
        assert j.verdict is Verdict.PLAUSIBLE

    def test_a_range_reference_is_named_with_both_ends(self) -> None:
        j = judge(1000.0, Reference(40.0, 60.0, "day range"))
        assert "the day range 40-60" in j.detail

    def test_details_fit_a_dead_letter(self) -> None:
        """The detail travels in a dead letter cut at 90 characters: it must fit."""
        for price in (1e308, 1e9, 300.0, 0.001, -1e308):
            for ref in (PREV_50, Reference(0.0001, 9_999_999.0, "52-week range"), None):
                assert len(judge(price, ref).detail) <= 90


class TestHeldMoves:
    def test_a_held_price_confirms_a_later_cycle_only(self) -> None:
        held = HeldMoves()
        held.hold("X", 300.0, cycle=7)
        assert held.get("X", 7) is None  # the same cycle cannot confirm itself
        assert held.get("X", 8) == 300.0
        assert held.get("X", 7 + CONFIRM_WITHIN_CYCLES) == 300.0
        assert held.get("X", 8 + CONFIRM_WITHIN_CYCLES) is None  # too old to confirm
        assert held.get("Y", 8) is None

    def test_release_forgets(self) -> None:
        held = HeldMoves()
        held.hold("X", 300.0, cycle=1)
        held.release("X")
        held.release("never held")
        assert held.get("X", 2) is None and len(held) == 0

    def test_memory_is_bounded_oldest_first(self) -> None:
        """However many symbols jump at once, at most ``limit`` are remembered."""
        held = HeldMoves(limit=3)
        for i in range(10):
            held.hold(f"S{i}", float(i + 1), cycle=1)
        assert len(held) == 3
        assert [held.get(f"S{i}", 2) for i in (6, 7, 8, 9)] == [None, 8.0, 9.0, 10.0]
