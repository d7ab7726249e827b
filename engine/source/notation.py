"""Symbol notation: the engine speaks Yahoo notation everywhere (Redis keys, message ids, rows).

A symbols file may be written in Yahoo's notation or in the notation of the Nasdaq stock screener
(the export users download: ``BRK/B``, ``ABR^D``, ``RAC/WS``) or its dotted variant (``BRK.B``,
``RAC.WS``, ``SPAC.U``). :func:`normalise` turns one entry into the Yahoo symbol, translating
those forms (:func:`nasdaq_to_yahoo` is the same translation for tools), or says why the entry
cannot be used. :func:`check_symbol` is the strict test: None for a Yahoo symbol, else the reason
and the fix.

Yahoo's own forms are accepted as they are (shapes from Yahoo's answers and yfinance's tests):

==============  ===================================================================
``AAPL``        equity, class share ``BRK-B``, preferred ``ABR-PD``, warrant ``RAC-WT``,
                unit ``SPAC-UN``, crypto pair ``BTC-USD``
``SHOP.TO``     listing on another exchange: a ``.XXXX`` suffix of 2-4 letters/digits or
                one of Yahoo's one-letter suffixes ``.L .V .F .T`` (also the emulator's
                replicas ``AAPL.X12``)
``^GSPC``       index: ``^`` then letters/digits (``^N225``, ``^STOXX50E``), optionally
                an exchange suffix (``^JN0U.JO``)
``EURUSD=X``    currency pair (``JPY=X`` for USD/JPY)
``ES=F``        future (continuous front month)
==============  ===================================================================

The accepted alphabet is ``A-Z 0-9 - .`` plus ``^`` (only leading) and ``=`` (only before a
final ``X`` or ``F``), at most :data:`MAX_SYMBOL_LEN` characters, so no symbol can carry quotes,
semicolons, spaces, wildcards, separators or unicode into SQL, Redis key names, message ids or
log lines.
"""

from __future__ import annotations

import re
from typing import Final

MAX_SYMBOL_LEN: Final = 20
"""Longest accepted symbol (Yahoo's longest real ones are ~12; leaves room for suffixes)."""
YAHOO_ONE_LETTER_SUFFIXES: Final = frozenset("LVFT")
"""Yahoo's one-letter exchange suffixes: .L London, .V TSX Venture, .F Frankfurt, .T Tokyo.
Any other one-letter ``.X`` suffix is exchange dot notation (``BRK.B``, ``SPAC.U``)."""
NOT_EXCHANGE_SUFFIXES: Final = frozenset({"WS", "UN", "RT"})
"""Two-letter dot suffixes that are warrants, units and rights, never a Yahoo exchange."""

_EQUITY: Final = (
    r"[A-Z0-9]+(?:-[A-Z0-9]+)*"
    r"(?:\.(?!(?:WS|UN|RT)\Z)(?:[A-Z0-9]{2,4}|[LVFT]))?"
)
_INDEX: Final = r"\^[A-Z0-9]+(?:\.[A-Z0-9]{2,4})?"
_CURRENCY: Final = r"(?:[A-Z]{3}){1,2}=X"
_FUTURE: Final = r"[A-Z0-9]{1,6}=F"
_VALID_RE: Final = re.compile(f"{_EQUITY}|{_INDEX}|{_CURRENCY}|{_FUTURE}")
"""The accepted shapes; :func:`check_symbol` explains any string that matches none of them."""
_ALLOWED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
_SEGMENT_RE: Final = re.compile(r"[A-Z0-9]+")
_SUFFIX_RE: Final = re.compile(r"[A-Z0-9]{1,4}")
_ROOT: Final = r"(?P<root>[A-Z][A-Z0-9]{0,9})"
_SCREENER_RE: Final = re.compile(
    _ROOT + r"(?:\^(?P<pref>[A-Z]?)|/WS(?:/(?P<wser>[A-Z]))?|/(?P<sfx>[A-Z]{1,2}))"
)
"""The screener's forms: ``ROOT^X``, ``ROOT^``, ``ROOT/WS``, ``ROOT/WS/X``, ``ROOT/X``."""
_DOTTED_RE: Final = re.compile(_ROOT + r"\.(?:WS(?:\.(?P<wser>[A-Z]))?|(?P<sfx>[A-Z]{1,2}))")
"""Dot notation (NYSE/CQS and Nasdaq ACT): ``ROOT.X``, ``ROOT.WS``, ``ROOT.WS.X``, ``ROOT.U``."""
_UNITS: Final = frozenset({"U", "UN"})
_WARRANTS: Final = frozenset({"W", "WS"})
_RIGHTS: Final = frozenset({"R", "RT"})


class NoYahooForm(ValueError):
    """A symbol in exchange notation for which Yahoo has no form we can vouch for."""


def _screener_suffix(root: str, sfx: str, written: str) -> str:
    """Yahoo form of ``ROOT`` + class/unit/warrant/rights suffix ``sfx`` (``/X`` or ``.X``)."""
    if sfx in _UNITS:
        return f"{root}-UN"
    if sfx in _WARRANTS:
        return f"{root}-WT"
    if sfx in _RIGHTS:
        raise NoYahooForm(
            f"{written!r} is rights in exchange notation; Yahoo has no form for rights we can "
            "vouch for: write its Yahoo symbol or remove the line"
        )
    if len(sfx) == 1:
        return f"{root}-{sfx}"
    raise NoYahooForm(
        f"{written!r} is exchange notation with suffix {sfx!r}, which has no known Yahoo form "
        "(known: class /X, preferred ^X, warrants /WS, units /U); write its Yahoo symbol"
    )


def from_exchange_notation(s: str) -> str | None:
    """The Yahoo symbol for ``s`` written in Nasdaq-screener or dot notation (exact: upper case,
    no whitespace), None if ``s`` is in neither. Raises :class:`NoYahooForm` for a form without a
    Yahoo equivalent (rights, unknown suffixes) rather than guess.

    ============  ==========  ================================================================
    written       Yahoo       meaning
    ============  ==========  ================================================================
    ``BRK/B``     ``BRK-B``   share class ``/X`` (or ``.X``) -> ``-X``
    ``ABR^D``     ``ABR-PD``  preferred series ``^X`` -> ``-PX``
    ``TY^``       ``TY-P``    preferred without a series letter ``^`` -> ``-P``
    ``RAC/WS``    ``RAC-WT``  warrants ``/WS`` (or ``.WS``, ``.W``) -> ``-WT``
    ``BAC/WS/A``  ``BAC-WTA`` warrants of a series ``/WS/X`` (or ``.WS.X``) -> ``-WTX``
    ``SPAC/U``    ``SPAC-UN`` units ``/U`` (or ``.U``, ``.UN``) -> ``-UN``
    ``ABC/RT``    (none)      rights ``/R``, ``/RT``, ``.R``, ``.RT``: :class:`NoYahooForm`
    ============  ==========  ================================================================

    ``VOD.L``-style suffixes (:data:`YAHOO_ONE_LETTER_SUFFIXES`) are Yahoo exchanges, not classes.
    Nasdaq-listed preferreds, warrants, rights and units use plain five-letter symbols
    (``ACGLO``, ``ABCDW``) in both notations.
    """
    m = _SCREENER_RE.fullmatch(s)
    if m is not None:
        root = m["root"]
        if m["pref"] is not None:
            return f"{root}-P{m['pref']}"
        if m["sfx"] is None:
            return f"{root}-WT{m['wser'] or ''}"
        return _screener_suffix(root, m["sfx"], s)
    m = _DOTTED_RE.fullmatch(s)
    if m is None:
        return None
    root, sfx = m["root"], m["sfx"]
    if sfx is None:
        return f"{root}-WT{m['wser'] or ''}"
    if sfx in YAHOO_ONE_LETTER_SUFFIXES or (len(sfx) == 2 and sfx not in NOT_EXCHANGE_SUFFIXES):
        return None  # a Yahoo exchange suffix (VOD.L, SHOP.TO): Yahoo notation already
    return _screener_suffix(root, sfx, s)


def normalise(s: object, *, translate: bool = True) -> tuple[str, None] | tuple[None, str]:
    """``(symbol, None)`` with the Yahoo symbol an entry of a symbols file stands for, or
    ``(None, reason)`` saying why it cannot be used and how to fix it.

    With ``translate`` (``symbols.translate_nasdaq``), screener and dot notation is translated
    (:func:`from_exchange_notation`); without it, such an entry is refused with its Yahoo form.
    The entry must be exact: surrounding whitespace and lower case are refused with the fix.
    """
    if translate and isinstance(s, str):
        try:
            yahoo = from_exchange_notation(s)
        except NoYahooForm as exc:
            return None, str(exc)
        if yahoo is not None:
            if len(yahoo) > MAX_SYMBOL_LEN:
                return None, f"too long once translated ({yahoo!r}, at most {MAX_SYMBOL_LEN})"
            return yahoo, None
    reason = check_symbol(s)
    if reason is not None:
        if not translate and isinstance(s, str) and _translatable(s):
            reason += " (or set symbols.translate_nasdaq = true to translate it)"
        return None, reason
    assert isinstance(s, str)
    return s, None


def _translatable(s: str) -> bool:
    try:
        return from_exchange_notation(s) is not None
    except NoYahooForm:
        return False


def nasdaq_to_yahoo(symbol: str) -> str:
    """The Yahoo symbol for ``symbol`` in any notation :func:`normalise` accepts (trimmed and
    upper-cased first), for tools that convert whole lists. Idempotent: a Yahoo symbol is
    returned as is. Raises :class:`ValueError` (:class:`NoYahooForm` included) for anything
    else, saying why."""
    s = symbol.strip().upper()
    yahoo, reason = normalise(s)
    if yahoo is None:
        raise ValueError(f"{symbol!r}: {reason}; no Yahoo symbol can be derived")
    return yahoo


def check_symbol(s: object) -> str | None:
    """None if ``s`` is an acceptable Yahoo symbol (the forms in the module docstring), else
    the reason and the fix."""
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
    if up.startswith("^"):
        return _case(s, up) or (
            "an index symbol is '^' followed by letters/digits (e.g. '^GSPC'), optionally an "
            "exchange suffix"
        )
    if "=" in up:
        return _case(s, up) or (
            "'=' appears only in currency ('EURUSD=X', 'JPY=X') and future ('ES=F') symbols"
        )
    notation = _notation(s, up)
    if notation is not None:
        return notation
    bad_chars = [c for c in up if c not in _ALLOWED]
    if bad_chars:
        return f"illegal character {bad_chars[0]!r}; symbols use only A-Z, 0-9, '-' and '.'"
    reason = _check_structure(up)
    if reason is None and up != s:
        return f"lower case; write {up!r}"
    return reason or "malformed symbol"


def _case(s: str, up: str) -> str | None:
    """The lower-case fix when upper-casing alone makes ``s`` valid."""
    return f"lower case; write {up!r}" if up != s and check_symbol(up) is None else None


def _notation(s: str, up: str) -> str | None:
    """The reason for a symbol written in exchange notation (``/``, ``^`` or a dot class)."""
    try:
        yahoo = from_exchange_notation(up)
    except NoYahooForm as exc:
        return str(exc)
    if yahoo is not None:
        kind = "Nasdaq notation" if ("/" in up or "^" in up) else "exchange dot notation"
        return f"{s!r} is {kind}; Yahoo writes {yahoo!r}"
    if "/" in up or "^" in up:
        return f"{s!r} is Nasdaq notation with no known Yahoo form; write the Yahoo symbol"
    return None


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
            return f"one-letter suffix {'.' + suffix!r} is not a Yahoo exchange (.L .V .F .T)"
    return None
