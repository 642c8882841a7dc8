"""The one composition of a rerank with the quality rules, shared by the adapters and the CLI.

A call goes: the reranker's results (it may have cut what :func:`~prism_core.quality.blend.engine_cuts`
allows) -> checked indices -> scored results best first -> :func:`~prism_core.quality.blend.apply_quality`
(quality filter, blend, threshold, top-n). Results the time budget left unscored are not ranked:
they come back after the ranked ones, in input order (:func:`unscored_in_input_order`). Items without
text are never sent to a model: :func:`partition_texts` sets them aside and names them in a warning.

No framework import: the adapters (``prism_integrations``) and ``prism-rerank`` both call this module.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from prism_core.quality.blend import DEFAULT_QUALITY_WEIGHT, QualityOutcome, aapply_quality, apply_quality
from prism_core.results import PrismResult
from prism_core.validation import CheckedTexts, check_text

__all__ = [
    "acompose_quality",
    "check_result_indices",
    "compose_quality",
    "hold_to_rules",
    "partition_texts",
    "quality_inputs",
    "unscored_in_input_order",
]

R = TypeVar("R", bound=PrismResult)


def check_result_indices(
    results: Sequence[PrismResult],
    n_inputs: int,
    *,
    expect_all: bool = False,
    error: type[Exception] = ValueError,
) -> None:
    """Raise ``error`` naming the first result whose index is out of range or repeated (and, with
    ``expect_all``, when some input has no result).

    Example:
        >>> check_result_indices([PrismResult(0, 0.9, 2.2, True)], 1, expect_all=True)
    """
    seen: set[int] = set()
    for result in results:
        if not 0 <= result.index < n_inputs or result.index in seen:
            raise error(
                f"The reranker returned an invalid or repeated index {result.index} for {n_inputs} documents"
            )
        seen.add(result.index)
    if expect_all and len(seen) != n_inputs:
        raise error(f"The reranker returned {len(seen)} results for {n_inputs} documents")


def _in_order(results: Sequence[PrismResult]) -> bool:
    return all((-a.logit, a.index) <= (-b.logit, b.index) for a, b in itertools.pairwise(results))


def hold_to_rules(results: Sequence[R], top_n: int | None, threshold: float | None) -> list[R]:
    """``score_threshold`` then ``top_n`` on results, best first (ties by input position).

    The same as :func:`prism_core.ranking.select`, but results already in that order (what every
    engine returns) are not sorted again: one linear check instead. A reranker that ignores the
    rules, or returns another order, is still held to them.

    Example:
        >>> rs = [PrismResult(1, 0.9, 2.2, True), PrismResult(0, 0.2, -1.4, False)]
        >>> [r.index for r in hold_to_rules(rs, top_n=None, threshold=0.5)]
        [1]
    """
    ranked = list(results) if _in_order(results) else sorted(results, key=lambda r: (-r.logit, r.index))
    if threshold is not None:
        ranked = [r for r in ranked if r.score >= threshold]
    if top_n is not None:
        ranked = ranked[:top_n]
    return ranked


def unscored_in_input_order(results: Sequence[R]) -> list[R]:
    """The results the time budget left unscored, in input order (they follow the ranked ones)."""
    return sorted((r for r in results if not r.scored), key=lambda r: r.index)


def quality_inputs(
    results: Sequence[PrismResult], n_inputs: int, *, drop_irrelevant: bool = False
) -> tuple[list[tuple[int, float]], set[int] | None]:
    """Check the reranker's results and turn them into :func:`apply_quality`'s input.

    Returns:
        ``(ranked, returnable)``: ``(index, relevance)`` of the scored results best first (ties keep
        the reranker's order), and the indices that can still be returned (``None``: all of them;
        with ``drop_irrelevant``, the relevant ones).

    Raises:
        ValueError: A result index out of range or repeated.
    """
    check_result_indices(results, n_inputs)
    scored = [r for r in results if r.scored]
    ranked = [(r.index, float(r.score)) for r in sorted(scored, key=lambda r: -r.score)]
    returnable = {r.index for r in scored if r.relevant} if drop_irrelevant else None
    return ranked, returnable


def compose_quality(
    results: Sequence[PrismResult],
    n_inputs: int,
    quality: Callable[[list[int]], Sequence[float]],
    *,
    min_quality: float | None = None,
    quality_weight: float | None = DEFAULT_QUALITY_WEIGHT,
    score_threshold: float | None = None,
    top_n: int | None = None,
    drop_irrelevant: bool = False,
) -> QualityOutcome:
    """The quality rules on one rerank's results (``quality`` called at most once).

    Args:
        results: The reranker's results for ``n_inputs`` texts.
        n_inputs: How many texts the reranker saw.
        quality: Raw quality of the texts at the given indices (see :func:`apply_quality`).
        min_quality: Drop texts whose raw quality is below this.
        quality_weight: The blend weight.
        score_threshold: Drop texts whose blended score is below this.
        top_n: Keep at most this many.
        drop_irrelevant: Never return a text the model judged irrelevant.

    Returns:
        The :class:`QualityOutcome` (``kept`` best first); unscored results are not in it.

    Example:
        >>> rs = [PrismResult(0, 0.9, 2.2, True), PrismResult(1, 0.8, 1.4, True)]
        >>> def quality(idx):
        ...     return [5.0 if i == 1 else 0.0 for i in idx]
        >>> out = compose_quality(rs, 2, quality, quality_weight=0.5)
        >>> [d.index for d in out.kept]
        [1, 0]
    """
    ranked, returnable = quality_inputs(results, n_inputs, drop_irrelevant=drop_irrelevant)
    return apply_quality(
        ranked,
        quality,
        returnable=returnable,
        min_quality=min_quality,
        quality_weight=quality_weight,
        score_threshold=score_threshold,
        top_n=top_n,
    )


async def acompose_quality(
    results: Sequence[PrismResult],
    n_inputs: int,
    quality: Callable[[list[int]], Awaitable[Sequence[float]]],
    *,
    min_quality: float | None = None,
    quality_weight: float | None = DEFAULT_QUALITY_WEIGHT,
    score_threshold: float | None = None,
    top_n: int | None = None,
    drop_irrelevant: bool = False,
) -> QualityOutcome:
    """:func:`compose_quality` with an awaitable ``quality`` (e.g. ``QualityScorer.ascore``)."""
    ranked, returnable = quality_inputs(results, n_inputs, drop_irrelevant=drop_irrelevant)
    return await aapply_quality(
        ranked,
        quality,
        returnable=returnable,
        min_quality=min_quality,
        quality_weight=quality_weight,
        score_threshold=score_threshold,
        top_n=top_n,
    )


def partition_texts(
    texts: Sequence[str | None], name: str, *, logger: logging.Logger, fate: str
) -> tuple[list[int], CheckedTexts, list[int]]:
    """Split items into those with text (checked) and those without (never sent to a model).

    Args:
        texts: Each item's text, ``None`` for an item without one.
        name: What the caller calls the items, for messages (``documents[3]``).
        logger: Where the warning naming the items without text goes.
        fate: What happens to them, the end of the warning.

    Returns:
        ``(scored, checked_texts, unscored)``: positions with text, their texts (a
        :class:`~prism_core.validation.CheckedTexts`: the engine and the scorer do not check them
        again), positions without.

    Raises:
        TypeError, ValueError: A text that is not an encodable string, naming ``name[i]``.

    Example:
        >>> partition_texts(["a", None], "docs", logger=logging.getLogger("x"), fate="kept")
        ([0], ['a'], [1])
    """
    scored: list[int] = []
    checked = CheckedTexts()
    unscored: list[int] = []
    for i, text in enumerate(texts):
        if text is None:
            unscored.append(i)
        else:
            scored.append(i)
            checked.append(check_text(text, f"{name}[{i}]"))
    if unscored:
        shown = ", ".join(f"{name}[{i}]" for i in unscored[:10]) + (", ..." if len(unscored) > 10 else "")
        logger.warning("%d of %d %s have no text (%s): %s", len(unscored), len(texts), name, shown, fate)
    return scored, checked, unscored
