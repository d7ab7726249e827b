"""engine.source.notation: Nasdaq-screener and dot notation to Yahoo; Yahoo's own index, currency
and future forms; why a symbol is not acceptable."""

from __future__ import annotations

import random

import pytest

from engine.source.notation import (
    MAX_SYMBOL_LEN,
    check_symbol,
    from_exchange_notation,
    nasdaq_to_yahoo,
    normalise,
)

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
    ("SPAC/U", "SPAC-UN"),
    # dot notation (NYSE/CQS, Nasdaq ACT: .W warrants, .U units)
    ("BRK.B", "BRK-B"),
    ("RAC.WS", "RAC-WT"),
    ("RAC.W", "RAC-WT"),
    ("BAC.WS.A", "BAC-WTA"),
    ("SPAC.U", "SPAC-UN"),
    ("SPAC.UN", "SPAC-UN"),
]
YAHOO_OWN_FORMS = ["^GSPC", "^DJI", "^N225", "^STOXX50E", "^JN0U.JO", "EURUSD=X", "JPY=X", "ES=F",
                   "GC=F", "BTC-USD"]  # fmt: skip
MALFORMED = ["-A", "A-", "A--B", "A.", ".A", "A..B", "A.B.C", "A.TOOLONG", "A-.TO", "AAPL.X",
             "^", "^A-B", "A^", "^^A", "A=X", "EUR=", "EURUSD=Y", "ES=FF", "=F", "ABC.WS",
             "1A.B"]  # fmt: skip
NO_YAHOO_FORM = ["ABC/RT", "ABC/R", "ABC.RT", "ABC.R", "ABC/WI", "ABC/CL"]

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

    @pytest.mark.parametrize(
        "symbol", ["BRK-B", "ABR-PD", "RAC-WT", "AAPL.X12", "SHOP.TO", "VOD.L", *YAHOO_OWN_FORMS]
    )
    def test_idempotent_on_yahoo_notation(self, symbol: str) -> None:
        """A symbol already in Yahoo notation is returned unchanged."""
        assert nasdaq_to_yahoo(symbol) == symbol
        assert nasdaq_to_yahoo(nasdaq_to_yahoo(symbol)) == symbol

    @pytest.mark.parametrize("symbol", [*NO_YAHOO_FORM, "ABC^A/CL", "A^B^C", "A B", "", "^", "A=B"])
    def test_unknown_forms_raise(self, symbol: str) -> None:
        """Forms without a known Yahoo equivalent raise ValueError instead of guessing."""
        with pytest.raises(ValueError, match="Yahoo"):
            nasdaq_to_yahoo(symbol)


class TestNormalise:
    """What a line of a symbols file becomes (the loader's rule)."""

    @pytest.mark.parametrize(("nasdaq", "yahoo"), NASDAQ_CASES)
    def test_translates_exchange_notation_by_default(self, nasdaq: str, yahoo: str) -> None:
        """The screener's own notation is translated: a real list needs no hand editing."""
        assert normalise(nasdaq) == (yahoo, None)

    @pytest.mark.parametrize("symbol", YAHOO_OWN_FORMS)
    def test_yahoo_forms_are_kept(self, symbol: str) -> None:
        """Index, currency, future and crypto symbols are Yahoo's own: kept as written."""
        assert normalise(symbol) == (symbol, None)
        assert from_exchange_notation(symbol) is None

    def test_index_is_not_called_nasdaq_notation(self) -> None:
        """Issue 16: '^GSPC' was refused as "Nasdaq notation"; it is Yahoo's index form."""
        assert check_symbol("^GSPC") is None
        assert "Nasdaq" not in (check_symbol("^gspc") or "")

    @pytest.mark.parametrize("symbol", NO_YAHOO_FORM)
    def test_forms_without_a_yahoo_equivalent_are_refused(self, symbol: str) -> None:
        """Rights, when-issued and called forms: refused with the reason, never guessed."""
        sym, reason = normalise(symbol)
        assert sym is None and reason and "Yahoo" in reason and symbol in reason

    def test_without_translation_the_fix_names_the_setting(self) -> None:
        """translate_nasdaq = false: a screener symbol is refused with its Yahoo form."""
        sym, reason = normalise("BRK/B", translate=False)
        assert sym is None
        assert reason == (
            "'BRK/B' is Nasdaq notation; Yahoo writes 'BRK-B' "
            "(or set symbols.translate_nasdaq = true to translate it)"
        )

    @pytest.mark.parametrize(("value", "why"), [(" BRK/B", "whitespace"), ("brk/b", "BRK-B")])
    def test_inexact_entries_are_refused_with_the_fix(self, value: str, why: str) -> None:
        """Translation covers notation only: whitespace and lower case are reported."""
        sym, reason = normalise(value)
        assert sym is None and reason is not None and why in reason

    def test_exchange_suffixes_are_not_share_classes(self) -> None:
        """VOD.L, SHOP.TO and 0700.HK are Yahoo exchanges, not dot-notation classes."""
        assert [normalise(s)[0] for s in ("VOD.L", "SHOP.TO", "0700.HK", "RY.V")] == [
            "VOD.L", "SHOP.TO", "0700.HK", "RY.V"]  # fmt: skip


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
            "SPAC-UN",
            *YAHOO_OWN_FORMS,
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
            ("BRK.B", "'BRK.B' is exchange dot notation; Yahoo writes 'BRK-B'"),
            ("RAC.WS", "'RAC.WS' is exchange dot notation; Yahoo writes 'RAC-WT'"),
            ("^gspc", "lower case; write '^GSPC'"),
            ("eurusd=x", "lower case; write 'EURUSD=X'"),
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

    @pytest.mark.parametrize("symbol", MALFORMED)
    def test_rejects_malformed(self, symbol: str) -> None:
        """Misplaced separators and bad suffixes are rejected."""
        assert check_symbol(symbol) is not None

    @pytest.mark.parametrize("value", [42, None, b"AAPL", ["AAPL"], {"symbol": "AAPL"}])
    def test_rejects_non_strings(self, value: object) -> None:
        """Values of the wrong type are rejected, naming the type."""
        assert check_symbol(value) == f"expected a string, got {type(value).__name__}"

    def test_accepted_alphabet_is_safe(self) -> None:
        """Whatever random string is accepted uses only A-Z, 0-9, '-' and '.', plus a leading
        '^' (index) or '=X'/'=F' at the end (currency, future)."""
        rng = random.Random(1234)
        alphabet = "ABFXZ09-.a/^= ;'\"*:\x00é_"
        safe = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
        accepted = 0
        for _ in range(5000):
            s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
            reason = check_symbol(s)
            if reason is None:
                accepted += 1
                core = s[1:] if s.startswith("^") else s
                core = core[:-2] if core.endswith(("=X", "=F")) else core
                assert set(core) <= safe and 0 < len(s) <= MAX_SYMBOL_LEN
            else:
                assert isinstance(reason, str) and reason
        assert accepted > 0
