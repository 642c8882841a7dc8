"""Input lines: bytes in, ``(query, documents)`` or a :class:`LineError` out.

The one set of line rules for every front end that reads request lines (``prism-rerank`` and
``prism-rerank batch``): only ``\\n`` ends a line (one ``\\r\\n`` or ``\\n`` ending is removed, any
other ``\\r`` is data), each line is decoded as UTF-8 on its own with a leading byte-order mark
dropped, blank lines (spaces, tabs, ``\\r``) hold no record, and a line is a JSON object
``{"query": str, "documents": [str, ...]}`` whose text UTF-8 can encode.

Example:
    >>> parse_bytes(b'\\xef\\xbb\\xbf{"query": "q", "documents": ["a"]}\\r')
    ('q', ['a'])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from prism_core.cli.options import one_line
from prism_core.validation import check_text

__all__ = [
    "BOM",
    "LineError",
    "decode_line",
    "is_blank",
    "is_blank_bytes",
    "parse_bytes",
    "parse_line",
    "split_lines",
    "strip_ending",
]

BOM = b"\xef\xbb\xbf"


class LineError(ValueError):
    """An input line that cannot be processed; the message says why (without the line number)."""


def split_lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """Number the lines of a byte stream: ``(line number, byte offset in the input, line body)``.

    Only ``\\n`` ends a line; the body has its ``\\n`` (and one ``\\r`` right before it) removed.

    Args:
        chunks: The input as bytes, in pieces of any size (a binary file iterates by lines).

    Example:
        >>> list(split_lines([b"a\\r\\nb\\rc\\n", b"d"]))
        [(1, 0, b'a'), (2, 3, b'b\\rc'), (3, 7, b'd')]
    """
    lineno = 0
    offset = 0
    pending = b""
    for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) != -1:
            lineno += 1
            yield lineno, offset, strip_ending(pending[start : end + 1])
            offset += end + 1 - start
            start = end + 1
        pending = pending[start:]
    if pending:
        yield lineno + 1, offset, strip_ending(pending)


def strip_ending(raw: bytes) -> bytes:
    """``raw`` without its ``\\n`` ending and one ``\\r`` right before it."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
    return raw


def decode_line(body: bytes, offset: int | None = None) -> str:
    """Decode one line as UTF-8, dropping a leading byte-order mark.

    Args:
        body: The line's bytes, without its line ending.
        offset: The line's byte offset in the input, to name the bad byte's place in the input too.

    Returns:
        The text.

    Raises:
        LineError: The line is not valid UTF-8; the message names the first bad byte and its offset.

    Example:
        >>> decode_line(b"\\xef\\xbb\\xbf{}")
        '{}'
        >>> decode_line(b'{"q": "\\xff"}')  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        LineError: not valid UTF-8: byte 0xff at byte offset 7 of the line (invalid start byte)
    """
    skip = len(BOM) if body.startswith(BOM) else 0
    try:
        return body[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        where = f"byte offset {at} of the line" + (f", {offset + at} of the input" if offset else "")
        hint = ""
        if body.startswith((b"\xff\xfe", b"\xfe\xff")):
            hint = "; the input looks like UTF-16: convert it to UTF-8"
        raise LineError(f"not valid UTF-8: byte 0x{body[at]:02x} at {where} ({exc.reason}){hint}") from None


def is_blank(text: str) -> bool:
    """A line holding only spaces, tabs and carriage returns (JSON whitespace) has no record.

    Example:
        >>> is_blank(" \\t\\r"), is_blank("\\u00a0")
        (True, False)
    """
    return not text.strip(" \t\r")


def parse_line(text: str) -> tuple[str, list[str]]:
    """Validate one input line and return its query and documents.

    Control characters inside JSON strings (a bare ``\\r``...) are read as data.

    Args:
        text: The line, decoded, without its line ending.

    Returns:
        ``(query, documents)``.

    Raises:
        LineError: The line is not valid JSON, not a valid request, or holds text that cannot be
            encoded as UTF-8 (a lone surrogate).

    Example:
        >>> parse_line('{"query": "q", "documents": ["a", "b"]}')
        ('q', ['a', 'b'])
    """
    try:
        obj = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise LineError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise LineError(f"invalid JSON: {one_line(exc)}") from None
    if not isinstance(obj, dict):
        raise LineError(f'expected a JSON object {{"query": ..., "documents": [...]}}, got {_json_type(obj)}')
    if "query" not in obj:
        raise LineError('missing "query"')
    query = obj["query"]
    if not isinstance(query, str):
        raise LineError(f'"query" must be a string, got {_json_type(query)}')
    if "documents" not in obj:
        raise LineError('missing "documents"')
    documents = obj["documents"]
    if not isinstance(documents, list):
        raise LineError(f'"documents" must be a list of strings, got {_json_type(documents)}')
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise LineError(f'"documents"[{i}] must be a string, got {_json_type(doc)}')
    try:
        check_text(query, '"query"')
        for i, doc in enumerate(documents):
            check_text(doc, f'"documents"[{i}]')
    except ValueError as exc:
        raise LineError(one_line(exc)) from None
    return query, documents


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover - json.loads yields nothing else


def is_blank_bytes(body: bytes) -> bool:
    """:func:`is_blank` on a line's bytes: a line that is not valid UTF-8 is not blank.

    Example:
        >>> is_blank_bytes(b"\\xef\\xbb\\xbf \\r"), is_blank_bytes(b"\\xff")
        (True, False)
    """
    return is_blank(body.removeprefix(BOM).decode("utf-8", "replace"))


def parse_bytes(body: bytes) -> tuple[str, list[str]]:
    """One line's bytes (as :func:`split_lines` gives them) → ``(query, documents)``.

    Raises:
        LineError: As :func:`decode_line` and :func:`parse_line` say.
    """
    return parse_line(decode_line(body))
