"""engine.source.notation: Nasdaq-screener notation to Yahoo; why a symbol is not acceptable."""

from __future__ import annotations

import random

import pytest

from engine.source.notation import MAX_SYMBOL_LEN, check_symbol, nasdaq_to_yahoo

# Every non-alphabetic form in the Nasdaq-screener export (class shares, preferreds with and
# without a series letter, warrants), plus forms the screener uses elsewhere.
NASDAQ_CASES = [
    ("BRK/B", "BRK-B"),
    ("BRK/A", "BRK-A"),
    ("AKO/A", "AKO-A"),
    ("AKO/B", "AKO-B"),
    ("BF/A", "BF-A"),
    ("BF/B", "BF-B"),
    ("BIO/B", "BIO-B"),
    ("CRD/A", "CRD-A"),
    ("CRD/B", "CRD-B"),
    ("HEI/A", "HEI-A"),
    ("HVT/A", "HVT-A"),
    ("WSO/B", "WSO-B"),
    ("ABR^D", "ABR-PD"),
    ("C^N", "C-PN"),
    ("BA^A", "BA-PA"),
    ("AHRT^A", "AHRT-PA"),
    ("FLG^U", "FLG-PU"),
    ("DCOM^", "DCOM-P"),
    ("ETI^", "ETI-P"),
    ("TFIN^", "TFIN-P"),
    ("TY^", "TY-P"),
    ("PHXE^", "PHXE-P"),
    ("RAC/WS", "RAC-WT"),
    ("BAC/WS/A", "BAC-WTA"),
    ("SPAC/U", "SPAC-U"),
]

INJECTION_ATTEMPTS = [
    "AAPL'; DROP TABLE market_data;--",
    "AAPL;",
    "A'B",
    'A"B',
    "A B",
    "A\tB",
    "A\nB",
    "A\r\nB",
    "A\x00B",
    "market:*",
    "A*",
    "A?",
    "A[B]",
    "A{B}",
    "A:B",
    "A$B",
    "A%",
    "A|B",
    "A`B`",
    "A\\B",
    "../etc/passwd",
    "A,B",
    "A=B",
    "A>B",
    "A)B",
    "ＡＡＰＬ",  # full-width letters
    "AAPL\u200b",  # zero-width space
    "ÄPFEL",
    "A\u0301",
]


class TestNasdaqToYahoo:
    @pytest.mark.parametrize(("nasdaq", "yahoo"), NASDAQ_CASES)
    def test_odd_forms(self, nasdaq: str, yahoo: str) -> None:
        """Class shares, preferreds (with and without series), warrants and units convert."""
        assert nasdaq_to_yahoo(nasdaq) == yahoo

    @pytest.mark.parametrize(("nasdaq", "yahoo"), NASDAQ_CASES)
    def test_results_are_valid_yahoo_symbols(self, nasdaq: str, yahoo: str) -> None:
        """Every conversion result passes the validator."""
        assert check_symbol(nasdaq_to_yahoo(nasdaq)) is None

    def test_plain_symbols_unchanged(self) -> None:
        """Alphabetic symbols, including Nasdaq five-letter preferreds, pass through."""
        assert [nasdaq_to_yahoo(s) for s in ("AAPL", "F", "ACGLO", "GOOGL")] == [
            "AAPL",
            "F",
            "ACGLO",
            "GOOGL",
        ]

    def test_trims_and_upper_cases(self) -> None:
        """Surrounding whitespace and lower case are normalised."""
        assert nasdaq_to_yahoo("  brk/b ") == "BRK-B"

    @pytest.mark.parametrize("symbol", ["BRK-B", "ABR-PD", "RAC-WT", "AAPL.X12", "SHOP.TO"])
    def test_idempotent_on_yahoo_notation(self, symbol: str) -> None:
        """A symbol already in Yahoo notation is returned unchanged."""
        assert nasdaq_to_yahoo(symbol) == symbol
        assert nasdaq_to_yahoo(nasdaq_to_yahoo(symbol)) == symbol

    @pytest.mark.parametrize("symbol", ["ABC/RT", "ABC/WI", "ABC^A/CL", "A^B^C", "A B", "", "^"])
    def test_unknown_forms_raise(self, symbol: str) -> None:
        """Forms without a known Yahoo equivalent raise ValueError instead of guessing."""
        with pytest.raises(ValueError, match="Yahoo"):
            nasdaq_to_yahoo(symbol)


class TestCheckSymbol:
    @pytest.mark.parametrize(
        "symbol",
        [
            "AAPL",
            "F",
            "BRK-B",
            "ABR-PD",
            "RAC-WT",
            "BAC-WTA",
            "AAC-U",
            "AAPL.X1",
            "AAPL.X12",
            "AAPL.X123",
            "BRK-B.X7",
            "SHOP.TO",
            "VOD.L",
            "7203.T",
            "0700.HK",
            "A" * MAX_SYMBOL_LEN,
        ],
    )
    def test_accepts_yahoo_notation(self, symbol: str) -> None:
        """Yahoo US symbols, exchange suffixes and the emulator's replica suffix are accepted."""
        assert check_symbol(symbol) is None

    @pytest.mark.parametrize(
        ("symbol", "reason"),
        [
            ("BRK/B", "'BRK/B' is Nasdaq notation; Yahoo writes 'BRK-B'"),
            ("ABR^D", "'ABR^D' is Nasdaq notation; Yahoo writes 'ABR-PD'"),
            ("RAC/WS", "'RAC/WS' is Nasdaq notation; Yahoo writes 'RAC-WT'"),
            ("aapl", "lower case; write 'AAPL'"),
            ("Brk-b", "lower case; write 'BRK-B'"),
            ("BRK.B", "share class written with '.'; Yahoo writes 'BRK-B'"),
            (" AAPL", "surrounding whitespace; write 'AAPL'"),
            ("", "empty symbol"),
            ("   ", "blank symbol (only whitespace)"),
            ("A" * 21, "too long (21 characters, at most 20)"),
        ],
    )
    def test_rejects_with_fix(self, symbol: str, reason: str) -> None:
        """Each rejection says what is wrong and how to write it."""
        assert check_symbol(symbol) == reason

    @pytest.mark.parametrize("symbol", INJECTION_ATTEMPTS)
    def test_rejects_injection_attempts(self, symbol: str) -> None:
        """Quotes, separators, wildcards, whitespace, control and non-ASCII characters fail."""
        reason = check_symbol(symbol)
        assert reason is not None
        assert reason

    @pytest.mark.parametrize(
        "symbol", ["-A", "A-", "A--B", "A.", ".A", "A..B", "A.B.C", "A.TOOLONG", "A-.TO", "AAPL.X"]
    )
    def test_rejects_malformed(self, symbol: str) -> None:
        """Misplaced separators and bad suffixes are rejected."""
        assert check_symbol(symbol) is not None

    @pytest.mark.parametrize("value", [42, None, b"AAPL", ["AAPL"], {"symbol": "AAPL"}])
    def test_rejects_non_strings(self, value: object) -> None:
        """Values of the wrong type are rejected, naming the type."""
        assert check_symbol(value) == f"expected a string, got {type(value).__name__}"

    def test_accepted_alphabet_is_safe(self) -> None:
        """Whatever random string is accepted uses only A-Z, 0-9, '-' and '.'."""
        rng = random.Random(1234)
        alphabet = "ABZ09-.a/^ ;'\"*:\x00é_"
        safe = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
        accepted = 0
        for _ in range(5000):
            s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
            reason = check_symbol(s)
            if reason is None:
                accepted += 1
                assert set(s) <= safe and 0 < len(s) <= MAX_SYMBOL_LEN
            else:
                assert isinstance(reason, str) and reason
        assert accepted > 0
