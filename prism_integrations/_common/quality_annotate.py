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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prism_core.quality.blend import QUALITY_SCORE, check_min_quality, select_by_quality
from prism_core.quality.compose import partition_texts
from prism_core.quality.scorer import QualityScorer
from prism_core.validation import check_bool
from prism_integrations._common import Item, merge_metadata

logger = logging.getLogger(__name__)

__all__ = [
    "Item",
    "QualityKept",
    "aannotate_items",
    "annotate_items",
    "validate_min_quality",
    "validate_sort_by_quality",
]


def validate_min_quality(value: Any) -> float | None:
    """``None`` or a number in ``[0, 5]`` (raw scale); a ``ValueError`` even for a wrong type (pydantic)."""
    try:
        return check_min_quality(value)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


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


def annotate_items(
    scorer: QualityScorer,
    items: Sequence[Item],
    *,
    min_quality: float | None,
    sort_by_quality: bool,
    name: str = "documents",
) -> list[QualityKept]:
    """Score the items' texts (one scorer call) and decide what to return, in order.

    Kept: items at or above ``min_quality`` (all when ``None``), in input order or best quality first
    (``sort_by_quality``); items without text are never dropped (in input order: in their place, or
    after the scored ones when sorting). Empty input calls nothing.

    Raises:
        TypeError, ValueError: A text that is not an encodable string, naming ``name[i]``.
    """
    min_quality = check_min_quality(min_quality)
    scored, texts, unscored = _prepare(items, name)
    scores = scorer.score(texts) if texts else []
    return _keep(items, scored, scores, unscored, min_quality, sort_by_quality)


async def aannotate_items(
    scorer: QualityScorer,
    items: Sequence[Item],
    *,
    min_quality: float | None,
    sort_by_quality: bool,
    name: str = "documents",
) -> list[QualityKept]:
    """:func:`annotate_items` through ``scorer.ascore`` (the event loop is not blocked)."""
    min_quality = check_min_quality(min_quality)
    scored, texts, unscored = _prepare(items, name)
    scores = await scorer.ascore(texts) if texts else []
    return _keep(items, scored, scores, unscored, min_quality, sort_by_quality)
