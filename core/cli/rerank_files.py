"""Files of ``prism-rerank``: line counting, output-is-input refusal, binary chunks, the writer."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from collections.abc import Iterable
from contextlib import suppress
from typing import IO, Any

from prism_core.cli.options import (
    one_line,
)


class OutputError(Exception):
    """The output could not be written; the message is ready for stderr."""


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _count_lines(path: str) -> int | None:
    """Number of lines in a regular file (for the progress bar), or ``None``."""
    try:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def _fd_stat(stream: Any) -> os.stat_result | None:
    try:
        return os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no real descriptor (tests, wrappers)
        return None


def output_is_input(input_path: str, output_path: str) -> bool:
    """Whether writing ``output_path`` would write over the input file (``'-'``: stdin / stdout).

    Only a regular input file counts (a terminal is both stdin and stdout, harmlessly): the same
    path, the same file through a symbolic or hard link (:func:`os.path.samefile`), or standard
    output redirected into the input file (``prism-rerank in.jsonl >> in.jsonl``).

    Example:
        >>> output_is_input("in.jsonl", "-")  # stdout is not in.jsonl
        False
    """
    try:
        in_stat = os.stat(input_path) if input_path != "-" else _fd_stat(sys.stdin)
    except OSError:
        return False  # a missing input is reported when it is opened
    if in_stat is None or not stat.S_ISREG(in_stat.st_mode):
        return False
    if output_path == "-":
        out_stat = _fd_stat(sys.stdout)
        return out_stat is not None and os.path.samestat(in_stat, out_stat)
    if input_path != "-":
        try:
            return os.path.samefile(input_path, output_path)
        except OSError:
            return False  # the output does not exist yet
    try:
        return os.path.samestat(in_stat, os.stat(output_path))
    except OSError:
        return False


def _binary_chunks(stream: IO[Any]) -> Iterable[bytes]:
    """The bytes of ``stream``: its binary buffer when it has one, else its text encoded as UTF-8."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return buffer
    if isinstance(stream, (io.RawIOBase, io.BufferedIOBase)):
        return stream
    return (text.encode("utf-8", "surrogatepass") for text in iter(lambda: stream.read(65536), ""))


def _close_quietly(stream: IO[Any]) -> None:
    with suppress(OSError):
        stream.close()


class _Writer:
    """Writes JSONL records, flushing each line so results stream through pipes."""

    def __init__(self, stream: IO[str], name: str) -> None:
        self._stream = stream
        self.name = name
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        self._ascii = encoding not in ("utf8", "utf8sig", "")

    def dumps(self, record: dict[str, Any]) -> str:
        """One JSON line; ``ValueError`` on a non-finite number (JSON has none)."""
        text = json.dumps(record, ensure_ascii=self._ascii, allow_nan=False)
        if not self._ascii:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate slipped through: escape it, never crash
                text = json.dumps(record, ensure_ascii=True, allow_nan=False)
        return text + "\n"

    def write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write to {self.name}: {exc.strerror or one_line(exc)}") from None
