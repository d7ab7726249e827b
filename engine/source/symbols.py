"""The symbol universe: notation, validation, the symbols-file loader, and shards.

**Notation.** The engine speaks Yahoo notation everywhere (Redis keys, subjects, rows).
:func:`nasdaq_to_yahoo` converts the Nasdaq stock-screener notation (``BRK/B``, ``ABR^D``,
``RAC/WS``) and :func:`check_symbol` says why a string is not an acceptable symbol, with the fix.
The accepted alphabet is ``A-Z 0-9 - .`` and at most :data:`MAX_SYMBOL_LEN` characters, so no
symbol can carry quotes, semicolons, spaces, wildcards or unicode into SQL, Redis key names or
NATS subjects.

**Loading.** :func:`load_symbols` reads a JSON list (strings, or objects with a ``symbol`` key and
optional ``name``/``sector``/``exchange``) or a CSV with a ``symbol`` column. Every problem is
reported as ``(line, symbol, reason)``; JSON line numbers are those of the element in the file
text (found by decoding the top-level list one element at a time with
:meth:`json.JSONDecoder.raw_decode`). In ``reject`` mode any problem raises
:class:`~engine.errors.SymbolsError` listing them all; in ``skip`` mode bad lines are dropped and
returned in :attr:`Universe.skipped` for the caller to log. The result is a frozen
:class:`Universe` with a content digest, so a reload can tell whether anything changed.

**Shards** are the unit of ownership, later leased across hosts, so the mapping must be identical
in every process, host and Python run (never :func:`hash`, which is salted per process):
:func:`shard_of` is a jump consistent hash (Lamping & Veach, 2014, exact integer arithmetic) of
the first 8 bytes of BLAKE2b of the symbol. A symbol's shard depends on nothing but the symbol and
the shard count, so adding or removing one symbol changes only its own shard; and growing the
shard count from ``n`` to ``n+1`` moves only about ``1/(n+1)`` of the symbols.
:func:`assign_shards` deals shard ids round-robin to workers (counts differ by at most one).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, TextIO

import msgspec

from engine.errors import ConfigError, SymbolsError

logger = logging.getLogger(__name__)

MAX_SYMBOL_LEN: Final = 20
"""Longest accepted symbol (Yahoo's longest real ones are ~12; leaves room for suffixes)."""
MAX_FILE_BYTES: Final = 50 * 1024 * 1024
"""A symbols file larger than this is refused before it is read (5,000 symbols are ~0.5 MB)."""
MESSAGE_PROBLEMS: Final = 5
"""How many problems a :class:`SymbolsError` message quotes (all of them are in ``problems``)."""
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
_SAFE_SHOW_RE: Final = re.compile(r"[!-~](?:[ -~]{0,38}[!-~])?")  # printable ASCII, trimmed
_JSON_WS_RE: Final = re.compile(r"[ \t\n\r]*")
_U64: Final = (1 << 64) - 1
_JUMP_MULT: Final = 2862933555777941757  # the LCG multiplier of the jump-hash paper

OnInvalid = Literal["reject", "skip"]


# --------------------------------------------------------------------------------- notation


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


def _show(value: object) -> str:
    """A symbol (or whatever stood in its place) made safe to print in one line."""
    if isinstance(value, str) and (not value or _SAFE_SHOW_RE.fullmatch(value)):
        return value
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:39] + "…"


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


# ----------------------------------------------------------------------------------- models


class SymbolMeta(msgspec.Struct, frozen=True, omit_defaults=True):
    """Descriptive fields of a symbol, when the file has them (not used on the hot path)."""

    name: str | None = None
    sector: str | None = None
    exchange: str | None = None


class Problem(NamedTuple):
    """One bad line of a symbols file (what :class:`~engine.errors.SymbolsError` lists)."""

    line: int
    symbol: str
    reason: str


class Universe(msgspec.Struct, frozen=True, kw_only=True):
    """A loaded symbols file.

    ``symbols`` keeps file order; ``meta`` holds only symbols that had descriptive fields;
    ``skipped`` lists the lines dropped in ``skip`` mode; ``digest`` is the SHA-256 (hex) of the
    symbols in order, so equal digests mean the same universe and the same shards.
    """

    symbols: tuple[str, ...]
    meta: dict[str, SymbolMeta]
    skipped: tuple[Problem, ...]
    source: str
    digest: str

    def __len__(self) -> int:
        return len(self.symbols)


class Shard(msgspec.Struct, frozen=True):
    """One shard: its id and its symbols in sorted order."""

    id: int
    symbols: tuple[str, ...]


class _Row(NamedTuple):
    """One entry as parsed, before symbol rules are applied."""

    line: int
    symbol: object
    meta: SymbolMeta | None
    error: str | None  # structural problem found while parsing (wrong type, missing key)


class _JsonEntry(msgspec.Struct, frozen=True):
    """An object element of a JSON symbols file, for the fast path (unknown keys ignored)."""

    symbol: str
    name: str | None = None
    sector: str | None = None
    exchange: str | None = None


_FAST_JSON: Final = msgspec.json.Decoder(list[str | _JsonEntry])


class _FileError(Exception):
    """The file as a whole is unusable (not a list, bad JSON, no header...)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


# ---------------------------------------------------------------------------------- loading


def load_symbols(path: str | os.PathLike[str], on_invalid: OnInvalid = "reject") -> Universe:
    """Load and validate a symbols file (JSON or CSV, chosen by extension, else by content).

    Raises :class:`~engine.errors.SymbolsError` if the file is unreadable, not UTF-8, not JSON
    or CSV, over :data:`MAX_FILE_BYTES`, yields no valid symbol, or (``reject`` mode) has any
    bad line. ``problems`` on the error lists every ``(line, symbol, reason)``.
    """
    if on_invalid not in ("reject", "skip"):
        raise ConfigError(
            f"symbols.on_invalid = {on_invalid!r}; allowed: 'reject', 'skip'",
            key="symbols.on_invalid",
        )
    p = Path(path)
    text = _read_text(p)
    try:
        fmt = _detect_format(p, text)
        n_rows, (symbols, meta, problems) = _parse_and_check(fmt, text)
    except _FileError as exc:
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
    )
    logger.info(
        "symbols_loaded",
        extra={
            "source": str(p),
            "format": fmt,
            "count": len(symbols),
            "skipped": len(problems),
            "digest": universe.digest[:12],
        },
    )
    return universe


def _parse_and_check(
    fmt: Literal["json", "csv"], text: str
) -> tuple[int, tuple[list[str], dict[str, SymbolMeta], list[Problem]]]:
    """Rows parsed and checked. A well-formed JSON file takes one msgspec decode (no line
    numbers needed); any problem sends it down the slow path, which knows every line."""
    if fmt == "json":
        fast = _parse_json_fast(text)
        if fast is not None:
            checked = _apply_rules(fast)
            if not checked[2]:
                return len(fast), checked
        rows = _parse_json(text)
    else:
        rows = _parse_csv(text)
    return len(rows), _apply_rules(rows)


def _parse_json_fast(text: str) -> list[_Row] | None:
    """Rows of a JSON file whose every element has the right types, else None (line 0)."""
    try:
        items = _FAST_JSON.decode(text)
    except msgspec.DecodeError:  # includes ValidationError: let the slow path say where
        return None
    rows: list[_Row] = []
    for item in items:
        if isinstance(item, str):
            rows.append(_Row(0, item, None, None))
        else:
            name, sector, exchange = _clean(item.name), _clean(item.sector), _clean(item.exchange)
            meta = SymbolMeta(name, sector, exchange) if name or sector or exchange else None
            rows.append(_Row(0, item.symbol, meta, None))
    return rows


def _clean(value: str | None) -> str | None:
    """Trimmed text, or None for absent/blank (the same rule as :func:`_meta_from`)."""
    return (value.strip() or None) if value else None


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


def _detect_format(p: Path, text: str) -> Literal["json", "csv"]:
    ext = p.suffix.lower()
    if ext == ".json":
        return "json"
    if ext == ".csv":
        return "csv"
    stripped = text.lstrip()
    if not stripped:
        raise _FileError(1, "the file is empty")
    if stripped[0] in "[{":
        return "json"
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if "symbol" in (f.strip().lower() for f in next(csv.reader([first]), [])):
        return "csv"
    raise _FileError(
        1,
        "neither JSON (a list) nor CSV (a header row with a 'symbol' column); "
        "see symbols.json in the repository for the format",
    )


def _skip_ws(text: str, pos: int) -> int:
    m = _JSON_WS_RE.match(text, pos)
    assert m is not None  # the pattern matches the empty string
    return m.end()


def _parse_json(text: str) -> list[_Row]:
    """Decode the top-level list element by element, noting each element's line."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos == len(text):
        raise _FileError(1, "the file is empty")
    if text[pos] != "[":
        what = "an object" if text[pos] == "{" else "not a list"
        raise _FileError(
            text.count("\n", 0, pos) + 1,
            f"the top level must be a JSON list of symbols or of objects with a 'symbol' key, "
            f"found {what}",
        )
    rows: list[_Row] = []
    line, last = 1, 0
    pos = _skip_ws(text, pos + 1)
    if text.startswith("]", pos):
        return _json_tail(text, pos + 1, rows)
    while True:
        line += text.count("\n", last, pos)
        last = pos
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise _FileError(exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise _FileError(line, "invalid symbols entry: JSON nested too deeply") from None
        rows.append(_json_row(line, value))
        pos = _skip_ws(text, pos)
        sep = text[pos : pos + 1]
        if sep == "]":
            return _json_tail(text, pos + 1, rows)
        if sep != ",":
            where = text.count("\n", 0, pos) + 1
            found = "end of file" if not sep else repr(sep)
            raise _FileError(where, f"invalid JSON: expected ',' or ']', found {found}")
        pos = _skip_ws(text, pos + 1)
        if text.startswith("]", pos):
            raise _FileError(text.count("\n", 0, pos) + 1, "invalid JSON: trailing comma")


def _json_tail(text: str, pos: int, rows: list[_Row]) -> list[_Row]:
    pos = _skip_ws(text, pos)
    if pos != len(text):
        raise _FileError(text.count("\n", 0, pos) + 1, "unexpected data after the closing ']'")
    return rows


def _json_row(line: int, value: Any) -> _Row:
    if isinstance(value, str):
        return _Row(line, value, None, None)
    if not isinstance(value, dict):
        kind = "null" if value is None else type(value).__name__
        return _Row(
            line, value, None, f"expected a string or an object with a 'symbol' key, got {kind}"
        )
    if "symbol" not in value:
        return _Row(line, "", None, "object has no 'symbol' key")
    meta, error = _meta_from(value)
    return _Row(line, value["symbol"], meta, error)


def _meta_from(fields: dict[str, Any]) -> tuple[SymbolMeta | None, str | None]:
    values: dict[str, str] = {}
    for key in META_FIELDS:
        v = fields.get(key)
        if v is None:
            continue
        if not isinstance(v, str):
            return None, f"{key!r} must be a string or null, got {type(v).__name__}"
        if v.strip():
            values[key] = v.strip()
    return (SymbolMeta(**values) if values else None), None


def _parse_csv(text: str) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[_Row] = []
    prev_end = 0
    try:
        for record in reader:
            start, prev_end = prev_end + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if header is None:
                header = _csv_header(record, start)
                continue
            rows.append(_csv_row(header, record, start))
    except csv.Error as exc:
        raise _FileError(reader.line_num, f"invalid CSV: {exc}") from None
    if header is None:
        raise _FileError(1, "the file is empty")
    return rows


def _csv_header(record: list[str], line: int) -> list[str]:
    header = [f.strip().lower() for f in record]
    if "symbol" not in header:
        raise _FileError(line, f"the CSV header {record!r} has no 'symbol' column")
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise _FileError(line, f"the CSV header repeats column(s) {', '.join(dupes)}")
    return header


def _csv_row(header: list[str], record: list[str], line: int) -> _Row:
    fields = dict(zip(header, record, strict=False))
    symbol = fields.get("symbol", "")
    if len(record) != len(header):
        return _Row(
            line, symbol, None, f"expected {len(header)} fields (per header), got {len(record)}"
        )
    meta, error = _meta_from({k: fields.get(k) for k in META_FIELDS})
    return _Row(line, symbol, meta, error)


def _apply_rules(rows: Iterable[_Row]) -> tuple[list[str], dict[str, SymbolMeta], list[Problem]]:
    """Symbol rules and duplicate detection; first occurrence of a symbol wins."""
    symbols: list[str] = []
    meta: dict[str, SymbolMeta] = {}
    first_line: dict[str, int] = {}
    problems: list[Problem] = []
    for row in rows:
        reason = row.error or check_symbol(row.symbol)
        if reason is None:
            assert isinstance(row.symbol, str)
            seen = first_line.get(row.symbol)
            if seen is not None:
                reason = f"duplicate of line {seen}"
        if reason is not None:
            problems.append(Problem(row.line, _show(row.symbol), reason))
            continue
        assert isinstance(row.symbol, str)
        first_line[row.symbol] = row.line
        symbols.append(row.symbol)
        if row.meta is not None:
            meta[row.symbol] = row.meta
    return symbols, meta, problems


# ----------------------------------------------------------------------------------- shards


def _jump_hash(key: int, n_buckets: int) -> int:
    """Jump consistent hash, exact integer form: 64-bit key -> bucket in [0, n_buckets)."""
    b, j = -1, 0
    while j < n_buckets:
        b = j
        key = (key * _JUMP_MULT + 1) & _U64
        j = ((b + 1) << 31) // ((key >> 33) + 1)
    return b


def shard_of(symbol: str, n_shards: int) -> int:
    """The shard (0..n_shards-1) owning ``symbol``; identical on every host and Python run."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    digest = hashlib.blake2b(symbol.encode("utf-8"), digest_size=8).digest()
    return _jump_hash(int.from_bytes(digest, "big"), n_shards)


def build_shards(universe: Universe | Iterable[str], n_shards: int) -> tuple[Shard, ...]:
    """All ``n_shards`` shards (empty ones included), each with its symbols sorted."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    symbols = universe.symbols if isinstance(universe, Universe) else tuple(universe)
    if len(set(symbols)) != len(symbols):
        raise ValueError("build_shards: symbols contain duplicates")
    buckets: list[list[str]] = [[] for _ in range(n_shards)]
    for sym in symbols:
        buckets[shard_of(sym, n_shards)].append(sym)
    return tuple(Shard(i, tuple(sorted(b))) for i, b in enumerate(buckets))


def assign_shards(n_shards: int, n_workers: int) -> tuple[tuple[int, ...], ...]:
    """Shard ids per worker, round-robin: worker ``w`` owns ``w, w+n_workers, ...``.

    Counts differ by at most one; with more workers than shards the extra workers own none.
    """
    if n_shards < 1 or n_workers < 1:
        raise ValueError(f"need n_shards >= 1 and n_workers >= 1, got {n_shards}, {n_workers}")
    return tuple(tuple(range(w, n_shards, n_workers)) for w in range(n_workers))


# -------------------------------------------------------------------------------------- CLI


def check_command(path: str, on_invalid: str, out: TextIO, *, n_shards: int = 64) -> int:
    """``ingestion-agent symbols check FILE``: print a summary or every problem; 0 = usable."""
    if on_invalid not in ("reject", "skip"):
        print(f"error: --on-invalid must be 'reject' or 'skip', not {on_invalid!r}", file=out)
        return 1
    mode: OnInvalid = "skip" if on_invalid == "skip" else "reject"
    try:
        universe = load_symbols(path, mode)
    except SymbolsError as exc:
        print(f"{path}: REJECTED", file=out)
        if not exc.problems:  # the file as a whole is unusable; the message says why
            print(f"  {exc}", file=out)
            return 1
        _print_problems(exc.problems, out)
        hint = "correct those lines"
        if mode == "reject":
            hint += ', or set symbols.on_invalid = "skip" (--on-invalid skip) to drop them'
        print(f"{len(exc.problems)} invalid entries: {hint}", file=out)
        return 1
    _print_summary(universe, n_shards, out)
    if universe.skipped:
        print(f"skipped {len(universe.skipped)} invalid entries:", file=out)
        _print_problems(universe.skipped, out)
    return 0


def _print_problems(problems: Iterable[tuple[int, str, str]], out: TextIO) -> None:
    for line, symbol, reason in problems:
        print(f"  line {line}: {symbol or '-'}: {reason}", file=out)


def _print_summary(universe: Universe, n_shards: int, out: TextIO) -> None:
    syms = universe.symbols
    sizes = [len(s.symbols) for s in build_shards(universe, n_shards)]
    print(f"{universe.source}: OK, {len(syms)} symbols, digest {universe.digest[:16]}", file=out)
    print(f"  first: {', '.join(syms[:5])}", file=out)
    print(f"  last:  {', '.join(syms[-5:])}", file=out)
    print(
        f"  shards: {n_shards}, {min(sizes)}-{max(sizes)} symbols each "
        f"(mean {len(syms) / n_shards:.1f}), {sizes.count(0)} empty",
        file=out,
    )
