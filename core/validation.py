"""The one place where options and inputs are checked: clear errors naming the value and its position.

The engine, the three adapters, the CLI and the server all call these, so an option is accepted or
refused the same way everywhere. Integers and floats may be Python or NumPy scalars (anything
registered as :class:`numbers.Integral` / :class:`numbers.Real`); booleans are never numbers here,
and strings are never coerced (``"3"`` is not ``3``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any


def _is_bool(value: Any) -> bool:
    kind = type(value)
    return isinstance(value, bool) or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


def check_int(value: Any, name: str, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int`` (Python or NumPy integer), else raise naming it.

    Example:
        >>> check_int(3, "top_n", minimum=1)
        3
    """
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r:.80}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_optional_int(value: Any, name: str, minimum: int | None = None) -> int | None:
    """``None``, or :func:`check_int`."""
    return None if value is None else check_int(value, name, minimum)


def check_float(value: Any, name: str, low: float | None = None, high: float | None = None) -> float:
    """Return ``value`` as a finite ``float`` within ``[low, high]``, else raise naming it.

    Example:
        >>> check_float(0.5, "score_threshold", 0.0, 1.0)
        0.5
    """
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r:.80}")
    out = float(value)
    if math.isnan(out) or (low is not None and out < low) or (high is not None and out > high):
        bounds = f"in [{low:g}, {high:g}]" if low is not None and high is not None else "a finite number"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return out


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` if it is a ``bool`` (or NumPy bool), else raise naming it."""
    if not _is_bool(value):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}: {value!r:.80}")
    return bool(value)


def check_top_n(top_n: Any, name: str = "top_n") -> int | None:
    """``None`` or an int >= 1."""
    return check_optional_int(top_n, name, minimum=1)


def check_threshold(score_threshold: Any, name: str = "score_threshold") -> float | None:
    """``None`` or a number in [0, 1]."""
    return None if score_threshold is None else check_float(score_threshold, name, 0.0, 1.0)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An int >= ``minimum``."""
    return check_int(value, name, minimum)


def check_text(text: Any, name: str) -> str:
    """A ``str`` that UTF-8 can encode (no lone surrogates), else raise naming ``name``."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}: {text!r:.80}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{name} holds text that cannot be encoded as UTF-8 ({exc.reason} at character {exc.start}: "
            f"{text[exc.start : exc.end]!r}); lone surrogates usually come from decoding bytes with "
            "errors='surrogateescape' or from broken JSON escapes"
        ) from None
    return text


class CheckedQuery(str):
    """A query already checked by :func:`check_query` (an adapter checks it before the engine).

    :func:`check_query` returns it as a plain ``str`` without checking it again, so a query
    crossing the adapter and the engine is validated once per call.

    Example:
        >>> type(check_query(CheckedQuery("what is rust?")))
        <class 'str'>
    """


def check_query(query: Any) -> str:
    """Return ``query`` if it is a non-blank, encodable string, else raise naming it."""
    if isinstance(query, CheckedQuery):
        return str.__str__(query)
    query = check_text(query, "query")
    if not query.strip():
        raise ValueError(f"query must not be empty or blank, got {query!r}")
    return query


class CheckedTexts(list[str]):
    """Texts already checked by :func:`check_text` (an adapter names each by the caller's position).

    :func:`check_documents` returns them without checking each again, so a text crossing the adapter,
    the engine and the quality scorer is validated once per call.

    Example:
        >>> check_documents(CheckedTexts(["a", "b"]))
        ['a', 'b']
    """


def check_documents(documents: Any) -> list[str]:
    """Return ``documents`` as a list of encodable strings, or raise naming the first bad one."""
    if isinstance(documents, CheckedTexts):
        return list(documents)
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a sequence of str, got {type(documents).__name__}")
    return [check_text(doc, f"documents[{i}]") for i, doc in enumerate(documents)]


def check_rerank_args(
    query: Any, documents: Any, top_n: Any, score_threshold: Any, evidence: Any
) -> tuple[str, list[str], int | None, float | None, bool]:
    """Every backend's ``rerank``/``arerank`` arguments, checked in one place, in signature order.

    Example:
        >>> check_rerank_args("q", ["d"], None, 0.5, True)
        ('q', ['d'], None, 0.5, True)
    """
    return (
        check_query(query),
        check_documents(documents),
        check_top_n(top_n),
        check_threshold(score_threshold),
        check_bool(evidence, "evidence"),
    )


#: What ``long_documents`` may say: cut a document to its budget, or read it in overlapping windows.
LONG_DOCUMENT_MODES = ("truncate", "chunk")


def check_long_documents(max_tokens_per_doc: Any, long_documents: Any) -> tuple[int | None, str | None]:
    """``(max_tokens_per_doc, long_documents)`` checked: ``None`` or an int >= 1, and ``None``
    (the backend's default) or ``"truncate"``/``"chunk"``.

    Example:
        >>> check_long_documents(512, "chunk")
        (512, 'chunk')
    """
    budget = check_optional_int(max_tokens_per_doc, "max_tokens_per_doc", minimum=1)
    if long_documents is not None and long_documents not in LONG_DOCUMENT_MODES:
        raise ValueError(f"long_documents must be 'truncate' or 'chunk', got {long_documents!r}")
    return budget, long_documents
