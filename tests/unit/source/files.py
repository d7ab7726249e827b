"""Shared by the symbol tests: the repo's symbols.json and a file writer."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SYMBOLS_JSON = REPO / "symbols.json"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p
