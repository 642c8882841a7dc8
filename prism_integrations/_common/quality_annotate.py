"""The standalone quality components' shared logic: score, filter, order, annotate (no framework import).

Each component does the same: validate its options, score the documents' texts with ONE
:meth:`prism_core.quality.QualityScorer.score` call, keep the documents at or above ``min_quality``
(a rule the caller set; the others are dropped and logged), optionally order them by quality, and
return copies whose metadata is a copy of the caller's followed by ``quality_score`` (the raw
score). Nothing else changes: body, id and the framework's score slot are kept. Items without text
(a Haystack ``Document`` whose ``content`` is ``None``, an image-only LlamaIndex node) are not
scored and come back unchanged (copied, no ``quality_score``), never dropped; a warning names them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prism_core.quality.blend import QUALITY_SCORE, check_min_quality, select_by_quality
from prism_core.quality.compose import partition_texts
from prism_core.quality.scorer import QualityScorer, as_quality_scorer
from prism_core.validation import check_bool
from prism_integrations._common import Item, check_items, copy_object, merge_metadata

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "Item",
    "QualityAdapter",
    "QualityKept",
    "checked_options",
    "validate_min_quality",
    "validate_sort_by_quality",
    "with_field",
]


def validate_min_quality(value: Any) -> float | None:
    """``None`` or a number in ``[0, 5]`` (raw scale); a ``ValueError`` even for a wrong type (pydantic)."""
    try:
        return check_min_quality(value)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def checked_options(
    quality: Any, min_quality: Any, sort_by_quality: Any
) -> tuple[QualityScorer, float | None, bool]:
    """A standalone component's three options, checked: a scorer (or its ``to_dict()`` mapping), a
    ``min_quality`` in ``[0, 5]`` or ``None``, and a bool.

    Example:
        >>> from prism_core.quality import QualityScorer
        >>> scorer, low, ordered = checked_options(QualityScorer(["repo/heads:edu.ckpt"]), 2, False)
        >>> low, ordered
        (2.0, False)
    """
    return (
        as_quality_scorer(quality),
        validate_min_quality(min_quality),
        validate_sort_by_quality(sort_by_quality),
    )


def validate_sort_by_quality(value: Any) -> bool:
    """A bool; a ``ValueError`` otherwise (pydantic reports it as a validation error)."""
    try:
        return check_bool(value, "sort_by_quality")
    except TypeError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class QualityKept:
    """One document a component returns.

    Attributes:
        index: Position in the caller's input.
        quality: The raw quality score, or ``None`` for an item without text (not scored, returned
            unchanged).
        metadata: A copy of the caller's metadata followed by ``quality_score``; ``None`` when not scored.
    """

    index: int
    quality: float | None
    metadata: dict[str, Any] | None


def _prepare(items: Sequence[Item], name: str) -> tuple[list[int], list[str], list[int]]:
    return partition_texts(
        [item.text for item in items],
        name,
        logger=logger,
        fate="they get no quality score and are returned unchanged",
    )


def _keep(
    items: Sequence[Item],
    scored: list[int],
    scores: Sequence[float],
    unscored: list[int],
    min_quality: float | None,
    sort_by_quality: bool,
) -> list[QualityKept]:
    if len(scores) != len(scored):
        raise ValueError(f"the scorer returned {len(scores)} scores for {len(scored)} texts")
    kept, dropped = select_by_quality(scores, min_quality=min_quality, sort_by_quality=sort_by_quality)
    if dropped:
        logger.debug("quality: %d of %d below min_quality=%s", len(dropped), len(scores), min_quality)
    out = [
        QualityKept(
            scored[j],
            float(scores[j]),
            merge_metadata(items[scored[j]].metadata, {QUALITY_SCORE: float(scores[j])}),
        )
        for j in kept
    ]
    out.extend(QualityKept(i, None, None) for i in unscored)
    if not sort_by_quality:
        out.sort(key=lambda k: k.index)  # input order, items without text in their place
    return out


def with_field(field: str) -> Callable[[Any, dict[str, Any]], Any]:
    """An annotated copy that takes the new metadata in ``field`` (``"metadata"``, ``"meta"``).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Doc:
        ...     meta: dict
        >>> with_field("meta")(Doc({"a": 1}), {"a": 1, "quality_score": 2.0})
        Doc(meta={'a': 1, 'quality_score': 2.0})
    """

    def annotated(obj: Any, metadata: dict[str, Any]) -> Any:
        changes: dict[str, Any] = {field: metadata}
        return copy_object(obj, None, **changes)

    return annotated


@dataclass(frozen=True)
class QualityAdapter(Generic[T]):
    """How one framework's objects go through the prior: checked, read, copied back annotated.

    A component holds one and makes one call (:meth:`annotate` or :meth:`aannotate`): the objects
    are checked (a wrong one named by its position), their texts scored in one scorer call, and the
    kept ones returned as copies, annotated or (without text) unchanged.

    Attributes:
        kind: The framework's object type (``Document``, ``NodeWithScore``).
        what: How an error names it (``"a LangChain Document"``).
        text: An object's text (``None``: not scored, returned unchanged).
        metadata: An object's metadata (copied, never modified).
        annotated: A copy of an object holding the new metadata.
        unchanged: A copy of an object without text.
        name: What the caller's list is called in errors (``"documents"``, ``"nodes"``).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Doc:
        ...     content: str | None
        ...     meta: dict
        >>> docs = QualityAdapter(Doc, "a Doc", lambda d: d.content, lambda d: d.meta, with_field("meta"))
        >>> docs.annotate(scorer, [Doc("x", {})], min_quality=None, sort_by_quality=False)  # doctest: +SKIP
        [Doc(content='x', meta={'quality_score': 2.5})]
    """

    kind: type[T]
    what: str
    text: Callable[[T], str | None]
    metadata: Callable[[T], Mapping[str, Any] | None]
    annotated: Callable[[T, dict[str, Any]], T]
    unchanged: Callable[[T], T] = copy_object
    name: str = "documents"

    def _prepare(self, objects: Any, min_quality: float | None) -> _Pending[T]:
        """Everything before the one scorer call: options and objects checked, texts gathered."""
        min_quality = check_min_quality(min_quality)
        checked: list[T] = check_items(objects, self.kind, self.what, self.name)
        items = [Item(self.text(o), self.metadata(o)) for o in checked]
        scored, texts, unscored = _prepare(items, self.name)
        return _Pending(checked, items, scored, texts, unscored, min_quality)

    def _finish(self, pending: _Pending[T], scores: Sequence[float], sort_by_quality: bool) -> list[T]:
        """Everything after it: keep, order and copy back (see :func:`_keep`)."""
        kept = _keep(
            pending.items, pending.scored, scores, pending.unscored, pending.min_quality, sort_by_quality
        )
        return [
            self.unchanged(pending.objects[k.index])
            if k.metadata is None
            else self.annotated(pending.objects[k.index], k.metadata)
            for k in kept
        ]

    def annotate(
        self, scorer: QualityScorer, objects: Any, *, min_quality: float | None, sort_by_quality: bool
    ) -> list[T]:
        """Score ``objects`` (one scorer call; none for no text) and return the kept ones as copies.

        Kept: objects at or above ``min_quality`` (all when ``None``), in input order or best quality
        first (``sort_by_quality``); objects without text are never dropped (in input order: in their
        place, or after the scored ones when sorting).

        Raises:
            TypeError, ValueError: An object of the wrong type, or a text that is not an encodable
                string, naming ``name[i]``; a bad ``min_quality``.
        """
        pending = self._prepare(objects, min_quality)
        return self._finish(pending, scorer.score(pending.texts) if pending.texts else [], sort_by_quality)

    async def aannotate(
        self, scorer: QualityScorer, objects: Any, *, min_quality: float | None, sort_by_quality: bool
    ) -> list[T]:
        """:meth:`annotate` through ``scorer.ascore`` (the event loop is not blocked)."""
        pending = self._prepare(objects, min_quality)
        scores = await scorer.ascore(pending.texts) if pending.texts else []
        return self._finish(pending, scores, sort_by_quality)


@dataclass(frozen=True)
class _Pending(Generic[T]):
    """A call between its preparation and its scores."""

    objects: list[T]
    items: list[Item]
    scored: list[int]
    texts: list[str]
    unscored: list[int]
    min_quality: float | None
