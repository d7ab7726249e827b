"""The symbol universe: the symbols file (JSON or CSV) loaded into a :class:`Universe`.

:func:`load_symbols` reads a JSON list (strings, or objects with a ``symbol`` key and optional
``name``/``sector``/``exchange``) or a CSV with a ``symbol`` column (the Nasdaq screener's export
is one). Each entry goes through :func:`engine.source.notation.normalise`: Yahoo symbols are kept,
Nasdaq-screener and dot notation (``BRK/B``, ``ABR^D``, ``RAC.WS``) is translated to Yahoo's
(``symbols.translate_nasdaq``, default on) and listed in :attr:`Universe.translated`. Every
problem is reported as ``(line, symbol, reason)``; JSON line numbers are those of the element in
the file text (found by decoding the top-level list one element at a time with
:meth:`json.JSONDecoder.raw_decode`). In ``skip`` mode (the default) bad lines are dropped and
returned in :attr:`Universe.skipped`; in ``reject`` mode any problem raises
:class:`~engine.errors.SymbolsError` listing them all. :func:`log_notes` logs what was translated
and skipped in one line each. The result is a frozen :class:`Universe` with a content digest, so
a reload can tell whether anything changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, Literal, NamedTuple, get_args

import msgspec

from engine.config import OnInvalid, SymbolsSettings
from engine.errors import ConfigError, SymbolsError
from engine.source.notation import normalise
from engine.source.symbolfile import (
    FileFormatError,
    Row,
    SymbolMeta,
    detect_format,
    parse_csv,
    parse_json,
    parse_json_fast,
)

logger = logging.getLogger(__name__)

MAX_FILE_BYTES: Final = 50 * 1024 * 1024
"""A symbols file larger than this is refused before it is read (5,000 symbols are ~0.5 MB)."""
MESSAGE_PROBLEMS: Final = 5
"""How many problems a :class:`SymbolsError` message quotes (all of them are in ``problems``)."""
LOG_EXAMPLES: Final = 5
"""How many translations and skipped lines the ``symbols_translated``/``symbols_skipped`` log
lines quote (the counts cover all of them)."""
_DEFAULT_MODE: Final = SymbolsSettings().on_invalid
_DEFAULT_TRANSLATE: Final = SymbolsSettings().translate_nasdaq
_ALLOWED_MODES: Final = ", ".join(repr(m) for m in get_args(OnInvalid))
_SAFE_SHOW_RE: Final = re.compile(r"[!-~](?:[ -~]{0,38}[!-~])?")  # printable ASCII, trimmed


def _show(value: object) -> str:
    """A symbol (or whatever stood in its place) made safe to print in one line."""
    if isinstance(value, str) and (not value or _SAFE_SHOW_RE.fullmatch(value)):
        return value
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:39] + "…"


# ----------------------------------------------------------------------------------- models


class Problem(NamedTuple):
    """One bad line of a symbols file (what :class:`~engine.errors.SymbolsError` lists)."""

    line: int
    symbol: str
    reason: str


class Translation(NamedTuple):
    """One entry of a symbols file written in exchange notation, and its Yahoo symbol."""

    line: int
    written: str
    symbol: str


class Universe(msgspec.Struct, frozen=True, kw_only=True):
    """A loaded symbols file.

    ``symbols`` keeps file order (in Yahoo notation); ``meta`` holds only symbols that had
    descriptive fields; ``skipped`` lists the lines dropped in ``skip`` mode; ``translated`` the
    entries translated from exchange notation; ``digest`` is the SHA-256 (hex) of the symbols in
    order, so equal digests mean the same universe and the same shards.
    """

    symbols: tuple[str, ...]
    meta: dict[str, SymbolMeta]
    skipped: tuple[Problem, ...]
    source: str
    digest: str
    translated: tuple[Translation, ...] = ()

    def __len__(self) -> int:
        return len(self.symbols)


def load_symbols(
    path: str | os.PathLike[str],
    on_invalid: OnInvalid = _DEFAULT_MODE,
    *,
    translate: bool = _DEFAULT_TRANSLATE,
) -> Universe:
    """Load and validate a symbols file (JSON or CSV, chosen by extension, else by content).

    ``translate``: translate Nasdaq-screener and dot notation into Yahoo's (else such an entry
    is a problem). Raises :class:`~engine.errors.SymbolsError` if the file is unreadable, not
    UTF-8, not JSON or CSV, over :data:`MAX_FILE_BYTES`, yields no valid symbol, or (``reject``
    mode) has any bad line. ``problems`` on the error lists every ``(line, symbol, reason)``.
    """
    if on_invalid not in get_args(OnInvalid):
        raise ConfigError(
            f"symbols.on_invalid = {on_invalid!r}; allowed: {_ALLOWED_MODES}",
            key="symbols.on_invalid",
        )
    p = Path(path)
    text = _read_text(p)
    try:
        fmt = detect_format(p, text)
        n_rows, (symbols, meta, problems, translated) = _parse_and_check(fmt, text, translate)
    except FileFormatError as exc:
        raise SymbolsError(f"symbols file {str(p)!r} line {exc.line}: {exc.reason}") from None
    if problems and on_invalid == "reject":
        raise SymbolsError(_reject_message(p, problems, n_rows), list(problems))
    if not symbols:
        why = f"all {n_rows} entries are invalid" if n_rows else "it lists no symbols"
        raise SymbolsError(
            f"symbols file {str(p)!r} yields an empty universe: {why}; "
            "the engine needs at least one symbol",
            list(problems),
        )
    universe = Universe(
        symbols=tuple(symbols),
        meta=meta,
        skipped=tuple(problems),
        source=str(p),
        digest=hashlib.sha256("\n".join(symbols).encode("ascii")).hexdigest(),
        translated=tuple(translated),
    )
    logger.info(
        "symbols_loaded",
        extra={
            "source": str(p),
            "format": fmt,
            "count": len(symbols),
            "skipped": len(problems),
            "translated": len(translated),
            "digest": universe.digest[:12],
        },
    )
    return universe


def load_configured(settings: SymbolsSettings) -> Universe:
    """:func:`load_symbols` as ``[symbols]`` configures it (file, on_invalid, translate_nasdaq)."""
    return load_symbols(settings.file, settings.on_invalid, translate=settings.translate_nasdaq)


def _parse_and_check(
    fmt: Literal["json", "csv"], text: str, translate: bool
) -> tuple[int, Checked]:
    """Rows parsed and checked. A well-formed JSON file takes one msgspec decode (no line
    numbers needed); any problem or translation sends it down the slow path, which knows every
    line."""
    if fmt == "json":
        fast = parse_json_fast(text)
        if fast is not None:
            checked = _apply_rules(fast, translate)
            if not checked.problems and not checked.translated:
                return len(fast), checked
        rows = parse_json(text)
    else:
        rows = parse_csv(text)
    return len(rows), _apply_rules(rows, translate)


def _reject_message(p: Path, problems: Sequence[Problem], n_rows: int) -> str:
    shown = "; ".join(
        f"line {pr.line} {pr.symbol!r}: {pr.reason}" for pr in problems[:MESSAGE_PROBLEMS]
    )
    more = (
        f" (and {len(problems) - MESSAGE_PROBLEMS} more)"
        if len(problems) > MESSAGE_PROBLEMS
        else ""
    )
    return (
        f"symbols file {str(p)!r}: {len(problems)} of {n_rows} entries are invalid: {shown}{more}. "
        'Correct those lines, or set symbols.on_invalid = "skip" to drop them'
    )


def _read_text(p: Path) -> str:
    """The file's text, or a :class:`SymbolsError` saying why it cannot be used."""
    where = f"symbols file {str(p)!r}"
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SymbolsError(
                f"{where} is {size / 1e6:.1f} MB, over the {MAX_FILE_BYTES // 2**20} MiB limit; "
                "is it the right file?"
            )
        with p.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SymbolsError(f"{where} not found; set symbols.file to an existing file") from None
    except IsADirectoryError:
        raise SymbolsError(f"{where} is a directory; set symbols.file to a file") from None
    except OSError as exc:
        raise SymbolsError(f"{where} cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SymbolsError(f"{where} is over the {MAX_FILE_BYTES // 2**20} MiB limit")
    return _decode(data, where)


def _decode(data: bytes, where: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SymbolsError(f"{where} is UTF-16; save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise SymbolsError(
            f"{where} is binary, not text (NUL byte on line {line}); "
            "a symbols file is UTF-8 JSON or CSV"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SymbolsError(
            f"{where} is not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None


class Checked(NamedTuple):
    """The rows of a file after the symbol rules."""

    symbols: list[str]
    meta: dict[str, SymbolMeta]
    problems: list[Problem]
    translated: list[Translation]


def _apply_rules(rows: Iterable[Row], translate: bool) -> Checked:
    """Symbol rules (:func:`~engine.source.notation.normalise`) and duplicate detection, on the
    Yahoo symbol (``BRK/B`` and ``BRK-B`` are the same); the first occurrence wins."""
    out = Checked([], {}, [], [])
    first_line: dict[str, int] = {}
    for row in rows:
        symbol: str | None = None
        reason = row.error
        if reason is None:
            symbol, reason = normalise(row.symbol, translate=translate)
        if symbol is not None and (seen := first_line.get(symbol)) is not None:
            same = "" if symbol == row.symbol else f" ({symbol} in Yahoo notation)"
            symbol, reason = None, f"duplicate of line {seen}{same}"
        if symbol is None:
            out.problems.append(Problem(row.line, _show(row.symbol), reason or "unusable"))
            continue
        if symbol != row.symbol:
            assert isinstance(row.symbol, str)
            out.translated.append(Translation(row.line, row.symbol, symbol))
        first_line[symbol] = row.line
        out.symbols.append(symbol)
        if row.meta is not None:
            out.meta[symbol] = row.meta
    return out


def log_notes(universe: Universe) -> None:
    """What loading ``universe`` changed, in one line each: the entries translated from exchange
    notation (INFO ``symbols_translated``) and the lines skipped (WARNING ``symbols_skipped``),
    each with its count and the first :data:`LOG_EXAMPLES`. Called where the engine adopts a
    universe (start, SIGHUP), not by every reader of the file."""
    if universe.translated:
        shown = universe.translated[:LOG_EXAMPLES]
        logger.info(
            "symbols_translated",
            extra={
                "source": universe.source,
                "count": len(universe.translated),
                "examples": ", ".join(f"{t.written} -> {t.symbol}" for t in shown),
            },
        )
    if universe.skipped:
        shown_p = universe.skipped[:LOG_EXAMPLES]
        logger.warning(
            "symbols_skipped",
            extra={
                "source": universe.source,
                "count": len(universe.skipped),
                "examples": "; ".join(f"line {p.line} {p.symbol!r}: {p.reason}" for p in shown_p),
                "fix": "ingestion-agent symbols check FILE lists every line",
            },
        )
