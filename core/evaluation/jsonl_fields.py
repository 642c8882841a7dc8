"""Reading JSON lines field by field, each problem an :class:`EvalDataError` naming file and line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from prism_core.evaluation.eval_set import EvalDataError

T = TypeVar("T")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines of a UTF-8 text file with their 1-based numbers."""
    if not path.is_file():
        raise EvalDataError("file not found" if not path.exists() else "not a regular file", path=path)
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path) from None


def _json_object(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalDataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=number) from None
    if not isinstance(value, dict):
        raise EvalDataError(f"expected a JSON object, got {type(value).__name__}", path=path, line=number)
    return value


def _id(value: Any, key: str, path: Path, number: int) -> str:
    """An id: a non-empty string (an integer is accepted and turned into its decimal string)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise EvalDataError(
            f"{key!r} must be a string, got {type(value).__name__}: {value!r:.60}", path=path, line=number
        )
    text = str(value)
    if not text.strip():
        raise EvalDataError(f"{key!r} must not be empty", path=path, line=number)
    return text


def _text(obj: dict[str, Any], key: str, path: Path, number: int, *, required: bool = True) -> str:
    if key not in obj:
        if required:
            raise EvalDataError(f"missing {key!r}", path=path, line=number)
        return ""
    value = obj[key]
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise EvalDataError(
            f"{key!r} must be a string, got {type(value).__name__}: {value!r:.60}", path=path, line=number
        )
    return value


def _label(value: Any, path: Path, number: int, what: str = "label") -> int:
    if isinstance(value, bool):
        raise EvalDataError(f"{what} must be an integer >= 0, got {value!r}", path=path, line=number)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise EvalDataError(
                f"{what} must be an integer >= 0, got {value!r:.60}", path=path, line=number
            ) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise EvalDataError(f"{what} must be an integer >= 0, got {value!r:.60}", path=path, line=number)
    return value


def _identified(path: Path, kind: str) -> Iterator[tuple[int, dict[str, Any], str]]:
    """Each line's number, JSON object and ``_id``; a missing ``_id`` or one seen before (a
    duplicate ``kind`` id) is an error naming the line."""
    seen: set[str] = set()
    for number, line in _lines(path):
        obj = _json_object(path, number, line)
        if "_id" not in obj:
            raise EvalDataError("missing '_id'", path=path, line=number)
        item_id = _id(obj["_id"], "_id", path, number)
        if item_id in seen:
            raise EvalDataError(f"duplicate {kind} id {item_id!r}", path=path, line=number)
        seen.add(item_id)
        yield number, obj, item_id


def _parsed(text: str, parse: Callable[[str], T], must: str, path: Path, number: int) -> T:
    """``parse(text)``, or an error naming the line: ``f"{must}, got {text!r}"``."""
    try:
        return parse(text)
    except ValueError:
        raise EvalDataError(f"{must}, got {text!r}", path=path, line=number) from None
