"""bench/accounting.py: the lost/duplicate checker shared by the fault bench and the soak."""

from __future__ import annotations

from typing import Any

from bench.accounting import StreamMsg, account, observation_key


def _msg(sym: str, t: int, vol: int, cycle: int = 1, msg_id: str | None = None) -> StreamMsg:
    p: dict[str, Any] = {"symbol": sym, "market_time": t, "volume": vol, "cycle": cycle}
    return p, {"Nats-Msg-Id": msg_id or f"{sym}:{t}:{vol}"}


CYCLES = [{"cycle": 1, "valid": 2, "unchanged": 0}]


def test_clean_run_has_nothing_lost_or_duplicated() -> None:
    out = account(CYCLES, [_msg("A", 1, 10), _msg("B", 1, 5)], [("A", 1), ("B", 1)], 0)
    assert out["lost"] == 0 and out["duplicated"] == 0
    assert out["per_symbol_time_order_violations"] == 0


def test_a_missing_row_and_a_missing_message_are_lost() -> None:
    stream = [_msg("A", 1, 10), _msg("B", 1, 5)]
    assert account(CYCLES, stream, [("A", 1)])["stream_not_in_pg"] == 1
    assert account(CYCLES, stream, [("A", 1)])["lost"] == 1
    assert account(CYCLES, stream[:1], [("A", 1)])["lost"] == 1


def test_by_default_a_higher_volume_at_the_same_time_is_a_duplicate() -> None:
    stream = [_msg("A", 1, 10), _msg("A", 1, 20, msg_id="A:1:20")]
    out = account(CYCLES, stream, [("A", 1)])
    assert out["duplicated"] >= 1 and out["per_symbol_time_order_violations"] == 1


def test_observation_key_keeps_a_higher_volume_and_catches_a_true_duplicate() -> None:
    stream = [_msg("A", 1, 10), _msg("A", 1, 20, msg_id="A:1:20")]
    out = account(CYCLES, stream, [("A", 1)], key=observation_key, check_msg_ids=False)
    assert out["duplicated"] == 0 and out["lost"] == 0
    assert out["per_symbol_time_order_violations"] == 0
    again = [*stream, _msg("A", 1, 20, msg_id="A:1:20b")]
    out = account(CYCLES, again, [("A", 1)], key=observation_key, check_msg_ids=False)
    assert out["duplicated"] == 1 and out["per_symbol_time_order_violations"] == 1
