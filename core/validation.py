"""Argument checks shared by the engine, the adapters and the CLI: clear errors naming the value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_query(query: Any) -> str:
    """Return ``query`` if it is a non-blank string, else raise naming it."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}: {query!r:.80}")
    if not query.strip():
        raise ValueError(f"query must not be empty or blank, got {query!r}")
    return query


def check_documents(documents: Any) -> list[str]:
    """Return ``documents`` as a list of strings, or raise naming the first bad one."""
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a sequence of str, got {type(documents).__name__}")
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise TypeError(f"documents[{i}] must be a str, got {type(doc).__name__}: {doc!r:.80}")
    return list(documents)


def check_top_n(top_n: Any, name: str = "top_n") -> int | None:
    """``None`` or an int >= 1."""
    if top_n is None:
        return None
    if isinstance(top_n, bool) or not isinstance(top_n, int):
        raise TypeError(f"{name} must be an int or None, got {type(top_n).__name__}: {top_n!r}")
    if top_n < 1:
        raise ValueError(f"{name} must be >= 1, got {top_n}")
    return top_n


def check_threshold(score_threshold: Any) -> float | None:
    """``None`` or a number in [0, 1]."""
    if score_threshold is None:
        return None
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, (int, float)):
        raise TypeError(f"score_threshold must be a float or None, got {type(score_threshold).__name__}")
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
    return float(score_threshold)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value
