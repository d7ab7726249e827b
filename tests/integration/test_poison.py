"""Poison quotes end to end: the engine (``run --once``) against an emulator serving extreme
values (every kind for fixed symbols, plus a random share of all quotes). Every other symbol is
published, the poisoned ones are dead-lettered with their reason, and the run ends normally."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from testkit import EmulatorProcess, stream_messages
from tests.conftest import NATS_URL, ROOT, run_cli
from yahoo_emulator.config import POISON_KINDS

pytestmark = [pytest.mark.integration, pytest.mark.fault]

N_SYMBOLS = 300
EXPECTED_REASON = {
    "ancient_time": "time_out_of_range",
    "huge_time": "time_out_of_range",
    "huge_volume": "volume_out_of_range",
    "nan_price": "malformed",
    "inf_price": "malformed",
    "neg_inf_change": "malformed",
    "max_price": "price_out_of_range",
    "long_symbol": "unrequested_symbol",
}


def _env(url: str, names: dict[str, str], tmp_path: Path, symbols: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(names)
    (tmp_path / "empty.toml").write_text("")
    (tmp_path / "symbols.json").write_bytes(orjson.dumps([{"symbol": s} for s in symbols]))
    env.update(
        {
            "INGEST_CONFIG": str(tmp_path / "empty.toml"),
            "INGEST_NATS__URL": NATS_URL,
            "INGEST_YAHOO__BASE_URL": url,
            "INGEST_YAHOO__MAX_IN_FLIGHT": "8",
            "INGEST_YAHOO__CRUMB_MIN_INTERVAL_S": "0",
            "INGEST_YAHOO__BACKOFF_BASE_S": "0.05",
            "INGEST_WORKERS__COUNT": "2",
            "INGEST_SYMBOLS__FILE": str(tmp_path / "symbols.json"),
            "INGEST_POSTGRES__ENABLED": "false",
            "INGEST_REDIS__ENABLED": "false",
            "INGEST_HTTP__ENABLED": "false",
            "INGEST_EARNINGS__ENABLED": "false",
            "INGEST_LOG__FORMAT": "json",
            "INGEST_NATS__OUTBOX_DIR": str(tmp_path / "outbox"),
            "INGEST_POSTGRES__SPILL_DIR": str(tmp_path / "spill"),
        }
    )
    return env


@pytest.mark.timeout(120)
def test_poisoned_quotes_are_dead_lettered_and_the_rest_published(
    nats_names: dict[str, str], tmp_path: Path
) -> None:
    universe = [e["symbol"] for e in orjson.loads((ROOT / "symbols.json").read_bytes())]
    symbols = [s for s in universe if s not in ("BRKS", "SI", "SIMP")][:N_SYMBOLS]
    fixed = {symbols[10 + i]: kind for i, kind in enumerate(POISON_KINDS * 3)}
    args = ["--market-state", "CLOSED", "--seed", "5", "--fault-poison-quote", "0.02",
            "--poison-symbols", ",".join(f"{s}={k}" for s, k in fixed.items())]  # fmt: skip
    with EmulatorProcess(args) as emu:
        r = run_cli(["run", "--once"], _env(emu.url, nats_names, tmp_path, symbols), timeout=90)
    assert r.returncode == 0, r.stderr[-3000:]
    published = [p for p, _ in stream_messages(NATS_URL, nats_names["INGEST_NATS__STREAM"])]
    letters = [p for p, _ in stream_messages(NATS_URL, nats_names["INGEST_NATS__DLQ_STREAM"])]
    pub = {p["symbol"] for p in published}
    assert len(pub) == len(published)  # each once
    assert pub <= set(symbols)  # no symbol cut to fit, none that was not asked for

    reasons: defaultdict[str, set[str]] = defaultdict(set)
    for letter in letters:
        assert letter["kind"] == "rejected" and letter["detail"]
        reasons[letter["symbol"]].add(letter["reason"])
    for sym, kind in fixed.items():
        if kind == "long_symbol":  # the answer's symbol is not ours: its letter is cut visibly
            assert sym not in pub
            assert any(s.startswith(sym + "-") and "unrequested_symbol" in rs
                       for s, rs in reasons.items()), sym  # fmt: skip
        else:
            assert reasons.get(sym) == {EXPECTED_REASON[kind]}, (sym, kind, reasons.get(sym))
    # every other symbol is published: the random share is dead-lettered, not lost
    poisoned = (
        set(fixed)
        | set(reasons)
        | {
            s
            for s in symbols
            if any(
                k.startswith(s + "-") and "unrequested_symbol" in rs for k, rs in reasons.items()
            )
        }
    )
    assert pub == set(symbols) - poisoned
    assert len(pub) > N_SYMBOLS * 0.8
    assert not pub & poisoned
    assert "encoding_failed" not in {x for rs in reasons.values() for x in rs}
