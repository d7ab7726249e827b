"""What the commands write on stdout: text for people, one JSON document for machines, and a
reader that goes away (``| head``) taken calmly.

The commands write to a :class:`PipeSafe` stream: once the reader closed the pipe, further
output is dropped (stdout is pointed at /dev/null, so the interpreter's final flush cannot fail
either) and the command still finishes and exits with its own status - ``symbols check big.csv
| head`` prints ten lines and exits 2 for a bad file, with no ``BrokenPipeError`` traceback.
"""

from __future__ import annotations

import io
import os
from typing import Any, TextIO, cast

import orjson


class PipeSafe(io.TextIOBase):
    """A text stream over ``stream`` that drops its output once the reader has gone."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.broken = False

    def _gone(self) -> None:
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (tests)
            pass

    def write(self, s: str) -> int:
        if not self.broken:
            try:
                self._stream.write(s)
            except BrokenPipeError:
                self._gone()
        return len(s)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return not self.broken and self._stream.isatty()


def pipe_safe(stream: TextIO) -> TextIO:
    """``stream`` wrapped in :class:`PipeSafe`, typed as what the commands take."""
    return cast(TextIO, PipeSafe(stream))


def write_json(out: TextIO, doc: Any) -> None:
    """One JSON document on one line (``jq`` reads it; so does ``json.loads``)."""
    out.write(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
