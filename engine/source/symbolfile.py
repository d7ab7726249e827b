"""Symbols file formats: JSON or CSV text parsed into rows (symbol, line, descriptive fields).

:func:`parse_json` decodes the top-level list one element at a time with
:meth:`json.JSONDecoder.raw_decode`, so each row knows the line of its element; a well-formed file
takes the one-decode path of :func:`parse_json_fast` (no line numbers). :func:`parse_csv` reads a
header row with a ``symbol`` column. A file unusable as a whole raises :class:`FileFormatError`;
a bad row carries its ``error``. The symbol rules are applied later, by
:mod:`engine.source.universe`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

import msgspec

META_FIELDS: Final = ("name", "sector", "exchange")
_JSON_WS_RE: Final = re.compile(r"[ \t\n\r]*")


class SymbolMeta(msgspec.Struct, frozen=True, omit_defaults=True):
    """Descriptive fields of a symbol, when the file has them (not used on the hot path)."""

    name: str | None = None
    sector: str | None = None
    exchange: str | None = None


class Row(NamedTuple):
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


class FileFormatError(Exception):
    """The file as a whole is unusable (not a list, bad JSON, no header...)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


# ---------------------------------------------------------------------------------- loading


def parse_json_fast(text: str) -> list[Row] | None:
    """Rows of a JSON file whose every element has the right types, else None (line 0)."""
    try:
        items = _FAST_JSON.decode(text)
    except msgspec.DecodeError:  # includes ValidationError: let the slow path say where
        return None
    rows: list[Row] = []
    for item in items:
        if isinstance(item, str):
            rows.append(Row(0, item, None, None))
        else:
            name, sector, exchange = _clean(item.name), _clean(item.sector), _clean(item.exchange)
            meta = SymbolMeta(name, sector, exchange) if name or sector or exchange else None
            rows.append(Row(0, item.symbol, meta, None))
    return rows


def _clean(value: str | None) -> str | None:
    """Trimmed text, or None for absent/blank (the same rule as :func:`_meta_from`)."""
    return (value.strip() or None) if value else None


def detect_format(p: Path, text: str) -> Literal["json", "csv"]:
    ext = p.suffix.lower()
    if ext == ".json":
        return "json"
    if ext == ".csv":
        return "csv"
    stripped = text.lstrip()
    if not stripped:
        raise FileFormatError(1, "the file is empty")
    if stripped[0] in "[{":
        return "json"
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if "symbol" in (f.strip().lower() for f in next(csv.reader([first]), [])):
        return "csv"
    raise FileFormatError(
        1,
        "neither JSON (a list) nor CSV (a header row with a 'symbol' column); "
        "see symbols.json in the repository for the format",
    )


def _skip_ws(text: str, pos: int) -> int:
    m = _JSON_WS_RE.match(text, pos)
    assert m is not None  # the pattern matches the empty string
    return m.end()


def parse_json(text: str) -> list[Row]:
    """Decode the top-level list element by element, noting each element's line."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos == len(text):
        raise FileFormatError(1, "the file is empty")
    if text[pos] != "[":
        what = "an object" if text[pos] == "{" else "not a list"
        raise FileFormatError(
            text.count("\n", 0, pos) + 1,
            f"the top level must be a JSON list of symbols or of objects with a 'symbol' key, "
            f"found {what}",
        )
    rows: list[Row] = []
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
            raise FileFormatError(
                exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})"
            ) from None
        except RecursionError:
            raise FileFormatError(line, "invalid symbols entry: JSON nested too deeply") from None
        rows.append(_json_row(line, value))
        pos = _skip_ws(text, pos)
        sep = text[pos : pos + 1]
        if sep == "]":
            return _json_tail(text, pos + 1, rows)
        if sep != ",":
            where = text.count("\n", 0, pos) + 1
            found = "end of file" if not sep else repr(sep)
            raise FileFormatError(where, f"invalid JSON: expected ',' or ']', found {found}")
        pos = _skip_ws(text, pos + 1)
        if text.startswith("]", pos):
            raise FileFormatError(text.count("\n", 0, pos) + 1, "invalid JSON: trailing comma")


def _json_tail(text: str, pos: int, rows: list[Row]) -> list[Row]:
    pos = _skip_ws(text, pos)
    if pos != len(text):
        raise FileFormatError(text.count("\n", 0, pos) + 1, "unexpected data after the closing ']'")
    return rows


def _json_row(line: int, value: Any) -> Row:
    if isinstance(value, str):
        return Row(line, value, None, None)
    if not isinstance(value, dict):
        kind = "null" if value is None else type(value).__name__
        return Row(
            line, value, None, f"expected a string or an object with a 'symbol' key, got {kind}"
        )
    if "symbol" not in value:
        return Row(line, "", None, "object has no 'symbol' key")
    meta, error = _meta_from(value)
    return Row(line, value["symbol"], meta, error)


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


def parse_csv(text: str) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[Row] = []
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
        raise FileFormatError(reader.line_num, f"invalid CSV: {exc}") from None
    if header is None:
        raise FileFormatError(1, "the file is empty")
    return rows


def _csv_header(record: list[str], line: int) -> list[str]:
    header = [f.strip().lower() for f in record]
    if "symbol" not in header:
        raise FileFormatError(line, f"the CSV header {record!r} has no 'symbol' column")
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise FileFormatError(line, f"the CSV header repeats column(s) {', '.join(dupes)}")
    return header


def _csv_row(header: list[str], record: list[str], line: int) -> Row:
    fields = dict(zip(header, record, strict=False))
    symbol = fields.get("symbol", "")
    if len(record) != len(header):
        return Row(
            line, symbol, None, f"expected {len(header)} fields (per header), got {len(record)}"
        )
    meta, error = _meta_from({k: fields.get(k) for k in META_FIELDS})
    return Row(line, symbol, meta, error)
