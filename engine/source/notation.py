"""Symbol notation: the engine speaks Yahoo notation everywhere (Redis keys, subjects, rows).

:func:`nasdaq_to_yahoo` converts the Nasdaq stock-screener notation (``BRK/B``, ``ABR^D``,
``RAC/WS``) and :func:`check_symbol` says why a string is not an acceptable symbol, with the fix.
The accepted alphabet is ``A-Z 0-9 - .`` and at most :data:`MAX_SYMBOL_LEN` characters, so no
symbol can carry quotes, semicolons, spaces, wildcards or unicode into SQL, Redis key names or
NATS subjects.
"""

from __future__ import annotations

import re
from typing import Final

MAX_SYMBOL_LEN: Final = 20
"""Longest accepted symbol (Yahoo's longest real ones are ~12; leaves room for suffixes)."""
YAHOO_ONE_LETTER_SUFFIXES: Final = frozenset("LVFT")
"""Yahoo's one-letter exchange suffixes: .L London, .V TSX Venture, .F Frankfurt, .T Tokyo.
Any other one-letter ``.X`` suffix is a share class written with a dot (``BRK.B``)."""
META_FIELDS: Final = ("name", "sector", "exchange")
_VALID_RE: Final = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*(?:\.(?:[A-Z0-9]{2,4}|[LVFT]))?")
"""The accepted shape; :func:`check_symbol` explains any string that does not match it."""
_ALLOWED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
_SEGMENT_RE: Final = re.compile(r"[A-Z0-9]+")
_SUFFIX_RE: Final = re.compile(r"[A-Z0-9]{1,4}")
_NASDAQ_RE: Final = re.compile(
    r"(?P<root>[A-Z][A-Z0-9]{0,9})"
    r"(?:\^(?P<pref>[A-Z]?)|/(?P<cls>[A-Z])|/(?P<wt>WS)(?:/(?P<wser>[A-Z]))?)"
)


def nasdaq_to_yahoo(symbol: str) -> str:
    """Convert a Nasdaq-screener symbol to Yahoo notation.

    Rules (the screener's forms on the left, all seen in its NASDAQ/NYSE/AMEX listings):

    ============  ==========  ================================================================
    Nasdaq        Yahoo       meaning
    ============  ==========  ================================================================
    ``AAPL``      ``AAPL``    plain symbol: unchanged
    ``BRK/B``     ``BRK-B``   share class ``/X`` -> ``-X`` (also NYSE units ``/U`` -> ``-U``)
    ``ABR^D``     ``ABR-PD``  preferred series ``^X`` -> ``-PX``
    ``TY^``       ``TY-P``    preferred without a series letter ``^`` -> ``-P``
    ``RAC/WS``    ``RAC-WT``  warrants ``/WS`` -> ``-WT``
    ``BAC/WS/A``  ``BAC-WTA`` warrants of a series ``/WS/X`` -> ``-WTX``
    ============  ==========  ================================================================

    Nasdaq-listed preferreds, warrants, rights and units already use plain five-letter symbols
    (``ACGLO``, ``ABCDW``) and pass unchanged. Input is trimmed and upper-cased; a symbol that
    is already valid Yahoo notation (``BRK-B``) is returned as is, so the function is idempotent.
    Anything else (rights ``/RT``, when-issued ``/WI``, called ``/CL``, ...) has no Yahoo form we
    can vouch for and raises :class:`ValueError` rather than guess.
    """
    s = symbol.strip().upper()
    m = _NASDAQ_RE.fullmatch(s)
    if m is None:
        if len(s) <= MAX_SYMBOL_LEN and _VALID_RE.fullmatch(s):
            return s
        raise ValueError(
            f"{symbol!r} is not a Nasdaq-screener symbol with a known Yahoo form "
            "(known: ROOT, ROOT/X, ROOT^X, ROOT^, ROOT/WS, ROOT/WS/X); write its Yahoo symbol"
        )
    root = m["root"]
    if m["pref"] is not None:
        return f"{root}-P{m['pref']}"
    if m["cls"] is not None:
        return f"{root}-{m['cls']}"
    if m["wt"]:
        return f"{root}-WT{m['wser'] or ''}"
    return root


def check_symbol(s: object) -> str | None:
    """None if ``s`` is an acceptable Yahoo-notation symbol, else the reason and the fix.

    Accepted: ``ROOT`` or ``ROOT-SEG[-SEG...]`` (letters/digits, ``BRK-B``, ``ABR-PD``,
    ``RAC-WT``), optionally followed by one exchange suffix ``.XXXX`` of 1-4 letters/digits
    (``SHOP.TO``, ``VOD.L``, the emulator's replicas ``AAPL.X12``), at most
    :data:`MAX_SYMBOL_LEN` characters, upper-case ASCII only.
    """
    if isinstance(s, str) and len(s) <= MAX_SYMBOL_LEN and _VALID_RE.fullmatch(s):
        return None
    return _explain(s)


def _explain(s: object) -> str:
    """Why ``s`` is not acceptable (it failed :data:`_VALID_RE`), with the fix."""
    if not isinstance(s, str):
        return f"expected a string, got {type(s).__name__}"
    if not s.strip():
        return "empty symbol" if not s else "blank symbol (only whitespace)"
    if s.strip() != s:
        inner = check_symbol(s.strip())
        return (
            f"surrounding whitespace; write {s.strip()!r}"
            if inner is None
            else f"{inner} (and surrounding whitespace)"
        )
    if len(s) > MAX_SYMBOL_LEN:
        return f"too long ({len(s)} characters, at most {MAX_SYMBOL_LEN})"
    if not s.isascii():
        bad = next(c for c in s if not c.isascii())
        return f"non-ASCII character {bad!r}; symbols use only A-Z, 0-9, '-' and '.'"
    up = s.upper()
    if "/" in up or "^" in up:
        try:
            fixed = nasdaq_to_yahoo(up)
        except ValueError:
            return f"{s!r} is Nasdaq notation with no known Yahoo form; write the Yahoo symbol"
        return f"{s!r} is Nasdaq notation; Yahoo writes {fixed!r}"
    bad_chars = [c for c in up if c not in _ALLOWED]
    if bad_chars:
        return f"illegal character {bad_chars[0]!r}; symbols use only A-Z, 0-9, '-' and '.'"
    reason = _check_structure(up)
    if reason is None and up != s:
        return f"lower case; write {up!r}"
    return reason or "malformed symbol"


def _check_structure(s: str) -> str | None:
    """Shape rules for a string already known to be within ``A-Z 0-9 - .``."""
    root, dot, suffix = s.partition(".")
    if not all(_SEGMENT_RE.fullmatch(seg) for seg in root.split("-")):
        return "misplaced '-' or '.' (leading, trailing or doubled)"
    if dot:
        if "." in suffix:
            return "more than one '.'; only one exchange suffix (e.g. '.TO') is allowed"
        if not _SUFFIX_RE.fullmatch(suffix):
            return f"exchange suffix {'.' + suffix!r} must be 1-4 letters/digits (e.g. '.TO')"
        if len(suffix) == 1 and suffix not in YAHOO_ONE_LETTER_SUFFIXES:
            fixed = f"{root}-{suffix}"
            return f"share class written with '.'; Yahoo writes {fixed!r}"
    return None
