"""The wire format of one result: :class:`~prism_core.results.PrismResult` ↔ the JSON item of a rerank answer.

One module owns it, for both sides: the rerank service writes items with :func:`result_to_item`
(:mod:`prism_core.serving.dialects.cohere`) and documents them with :func:`json_fields`
(:mod:`prism_core.serving.schemas`); :class:`~prism_core.backends.remote.RemoteReranker` reads them
back with :func:`result_from_item`. The fields are not listed here: they are read from the
dataclass, so a field added to :class:`PrismResult` is sent, documented and read back by all three.

An item is Cohere's ``index`` and ``relevance_score`` (the result's ``score``; its ``logit`` with
Infinity's and TEI's ``raw_scores``), then every other field of the result, in declaration order,
tuples as lists, ``null`` where not generated.

Reading is strict about what is there and lenient about what is not: ``index`` and
``relevance_score`` are required (a finite number in ``[0, 1]``); every other field may be missing
or ``null`` (the dataclass default is used; ``logit`` is derived from the score, ``relevant`` from the
logit), and a present field of the wrong type or shape is refused with a message naming it. A
half grounding report (``grounding`` without ``unsupported`` or the reverse) is dropped, so the
caller recomputes it from the document. An item with ``"scored": false`` is an unscored result
(:func:`prism_core.budgets.unscored_result`): its score and logit are placeholders (``0.0``).

Example:
    >>> r = PrismResult(index=2, score=0.5, logit=0.0, relevant=False, chunk=(0, 9))
    >>> item = result_to_item(r)
    >>> item["index"], item["relevance_score"], item["chunk"]
    (2, 0.5, [0, 9])
    >>> result_from_item(item, position=0, n=3) == r
    True
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from prism_core.ranking import sigmoid
from prism_core.results import PrismResult

#: The fields an item carries after ``index`` and ``relevance_score``: every other field of
#: :class:`PrismResult`, in declaration order.
RESULT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(PrismResult) if f.name not in ("index", "score")
)

#: ``PrismResult``'s field types (resolved from its annotations).
_TYPES: dict[str, Any] = typing.get_type_hints(PrismResult)
_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(PrismResult) if f.default is not dataclasses.MISSING
}

Bad = Callable[[str], Exception]


# ------------------------------------------------------------------------------- writing
def result_to_item(result: PrismResult, *, raw_scores: bool = False) -> dict[str, Any]:
    """The JSON item of ``result``: ``index``, ``relevance_score`` (the logit when ``raw_scores``),
    then every other field (:data:`RESULT_FIELDS`), tuples as lists.

    Example:
        >>> result_to_item(PrismResult(0, 0.9, 2.2, True), raw_scores=True)["relevance_score"]
        2.2
    """
    item: dict[str, Any] = {
        "index": result.index,
        "relevance_score": result.logit if raw_scores else result.score,
    }
    item.update((name, _as_json(getattr(result, name))) for name in RESULT_FIELDS)
    return item


def _as_json(value: Any) -> Any:
    """``value`` with every tuple a list, at any depth."""
    return [_as_json(v) for v in value] if isinstance(value, (tuple, list)) else value


def json_fields() -> dict[str, tuple[Any, Any]]:
    """Each item field's JSON type and default, for a schema (``tuple`` types as ``list``; a field
    the dataclass requires is optional on the wire, ``None`` by default).

    Example:
        >>> json_fields()["chunk"]
        (list[int] | None, None)
    """
    out: dict[str, tuple[Any, Any]] = {"index": (int, ...), "relevance_score": (float, ...)}
    for name in RESULT_FIELDS:
        kind = _json_type(_TYPES[name])
        if name in _DEFAULTS:
            out[name] = (kind, _DEFAULTS[name])
        else:
            out[name] = (kind | None, None)
    return out


def _json_type(kind: Any) -> Any:
    """``kind`` as JSON carries it: every ``tuple[...]`` a ``list[...]`` of its element type(s)."""
    args = [_json_type(a) for a in typing.get_args(kind) if a is not Ellipsis]
    origin = typing.get_origin(kind)
    if origin is tuple:
        return list[functools.reduce(operator.or_, dict.fromkeys(args))]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, args)
    return kind


# ------------------------------------------------------------------------------- reading
def result_from_item(item: Any, position: int, n: int, bad: Bad = ValueError) -> PrismResult:
    """Read one answer item back into a :class:`PrismResult`, checking every field.

    Args:
        item: The item (a mapping; anything else is refused).
        position: Its position in the answer, for messages (``results[position].field``).
        n: How many documents were sent (``index`` must be in ``range(n)``).
        bad: Builds the exception raised for a bad item from the reason (default ``ValueError``).

    Returns:
        The result (``grounding`` left ``None`` when the item has no complete grounding report).

    Raises:
        Exception: ``bad(reason)``, the reason naming the field and the value.

    Example:
        >>> result_from_item({"index": 0, "relevance_score": 0.5}, 0, 1).relevant
        False
        >>> result_from_item({"index": 1, "relevance_score": 0.5}, 0, 1)
        Traceback (most recent call last):
        ...
        ValueError: results[0].index 1 is out of range for 1 documents
    """
    where = f"results[{position}]"
    if not isinstance(item, Mapping):
        raise bad(f"{where} is not an object: {str(item)[:100]!r}")
    index = item.get("index")
    if not _is_int(index):
        raise bad(f"{where}.index must be an integer, got {index!r}")
    if not 0 <= index < n:
        raise bad(f"{where}.index {index} is out of range for {n} documents")
    if item.get("scored") is False:  # the time budget ran out first: placeholders, never checked
        score, logit = 0.0, 0.0
    else:
        score, logit = _score_and_logit(item, where, bad)
    fields: dict[str, Any] = {}
    for name in RESULT_FIELDS:
        value = item.get(name)
        if value is None or name not in _READ:
            continue
        converted = _READ[name](value)
        if converted is _INVALID:
            raise bad(f"{where}.{name} must be {_EXPECTED[name]} or null, got {value!r:.80}")
        fields[name] = converted
    if ("grounding" in fields) != ("unsupported" in fields):
        for name in ("grounding", "unsupported", "evidence_spans"):
            fields.pop(name, None)  # half a report: recomputed from the document
    relevant = fields.pop("relevant", logit > 0)
    return PrismResult(index=index, score=score, logit=logit, relevant=relevant, **fields)


def _score_and_logit(item: Mapping[str, Any], where: str, bad: Bad) -> tuple[float, float]:
    """``relevance_score`` (required, in ``[0, 1]``) and ``logit`` (derived when missing; must match)."""
    score = item.get("relevance_score")
    if not _is_number(score):
        raise bad(f"{where}.relevance_score must be a finite number, got {score!r}")
    score = float(score)
    if not 0.0 <= score <= 1.0:
        raise bad(
            f"{where}.relevance_score {score} is not in [0, 1] (a server returning raw "
            "logits instead of probabilities is not supported)"
        )
    logit = item.get("logit")
    logit = float(logit) if _is_number(logit) else _logit(score)
    if abs(sigmoid(logit) - score) > 1e-6:
        raise bad(f"{where}.logit {logit} does not match its relevance_score {score}")
    return score, logit


_INVALID = object()


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _logit(score: float) -> float:
    clipped = min(max(score, 1e-12), 1.0 - 1e-12)
    return math.log(clipped) - math.log1p(-clipped)


def _scalar(kind: Any) -> Any:
    """The one non-``None`` type of ``kind`` (``str | None`` → ``str``)."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if len(args) == 1 else kind


def _type_name(kind: Any) -> str:
    return getattr(_scalar(kind), "__name__", str(kind))


def _scalar_reader(kind: Any) -> Callable[[Any], Any]:
    expected = _scalar(kind)
    if expected not in (bool, int, str):
        raise TypeError(f"PrismResult field type {kind} has no wire reader (add one to _READERS)")

    def read(value: Any) -> Any:
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        return value if ok else _INVALID

    return read


def _chunk(value: Any) -> Any:
    ok = isinstance(value, list) and len(value) == 2 and all(map(_is_int, value)) and 0 <= value[0] < value[1]
    return (value[0], value[1]) if ok else _INVALID


def _grounding(value: Any) -> Any:
    return float(value) if _is_number(value) and 0 <= value <= 1 else _INVALID


def _unsupported(value: Any) -> Any:
    ok = isinstance(value, list) and all(isinstance(u, str) for u in value)
    return tuple(value) if ok else _INVALID


def _span(span: Any) -> bool:
    return (
        isinstance(span, list)
        and len(span) == 2
        and all(_is_int(x) and x >= 0 for x in span)
        and span[0] <= span[1]
    )


def _spans(value: Any) -> Any:
    if not isinstance(value, list) or not all(s is None or _span(s) for s in value):
        return _INVALID
    return tuple(None if s is None else (s[0], s[1]) for s in value)


#: Readers of the fields that are not a plain ``bool``/``int``/``str`` (those are read by type).
_READERS: dict[str, Callable[[Any], Any]] = {
    "chunk": _chunk,
    "grounding": _grounding,
    "unsupported": _unsupported,
    "evidence_spans": _spans,
}
_EXPECTED = {
    "chunk": "[start, end)",
    "grounding": "a number in [0, 1]",
    "unsupported": "a list of strings",
    "evidence_spans": "a list of [start, end]",
}
#: The reader of every field read from an item (``logit`` is read with the score).
_READ: dict[str, Callable[[Any], Any]] = {
    name: _READERS.get(name) or _scalar_reader(_TYPES[name]) for name in RESULT_FIELDS if name != "logit"
}
_EXPECTED.update((name, _type_name(_TYPES[name])) for name in _READ if name not in _EXPECTED)
