"""Framework-free rules for putting a quality prior beside a reranker's relevance.

These are pure functions: the adapters (and the CLI) call them with the reranker's relevance
scores and a way to get quality scores, and map the outcome back onto framework objects.

Scales:
    * ``quality_score`` (metadata) and ``min_quality`` are on the heads' **raw** scale: the JQL-Edu
      heads were trained on 0–5 educational-value labels; their raw output is kept unclipped
      (it can fall slightly outside [0, 5]). ``min_quality`` is a number in ``[0, 5]``, compared with
      the raw score the caller sees in the metadata.
    * :func:`normalize_quality` maps raw to ``[0, 1]``: ``clip(raw / 5, 0, 1)``; it is used only for
      blending.
    * ``quality_weight`` ``w`` is in ``[0, 1]``; the blended score is
      ``(1 − w) · relevance + w · normalize_quality(raw)`` — the linear mode of Haystack's
      ``MetaFieldRanker`` — and ``w = 0`` (the default) leaves the relevance order untouched
      (the blended score *is* the relevance).

Order of the rules (:func:`apply_quality`):
    0. documents that cannot be returned anyway (``returnable``; e.g. irrelevant ones when the
       adapter drops those) are set aside first: their quality is never computed and they take no
       ``top_n`` slot;
    1. **quality filter**: a document whose raw quality is below ``min_quality`` is dropped;
    2. **blend**: the blended score above;
    3. **threshold**: a document whose blended score is below ``score_threshold`` is dropped;
    4. **top-n**: the ``top_n`` best blended scores are kept, best first (ties keep the input order).

Quality is computed only for documents that can still be returned: before asking for any quality,
documents that provably fail the threshold (even with the best possible quality) or provably fall
outside the top ``top_n`` (only without ``min_quality``, which could free a slot) are dropped by
those rules without being scored. With ``w = 0`` and no ``min_quality`` only the top ``top_n``
documents (plus ties) are scored. Every input document ends up in exactly one list of the outcome
(nothing is lost silently).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from prism_core.validation import check_float, check_int, check_threshold, check_top_n

__all__ = [
    "DEFAULT_QUALITY_WEIGHT",
    "QUALITY_SCALE",
    "QUALITY_SCORE",
    "QualityDecision",
    "QualityOutcome",
    "QualityPlan",
    "aapply_quality",
    "apply_quality",
    "blend",
    "check_min_quality",
    "check_quality_weight",
    "engine_cuts",
    "finish_quality",
    "normalize_quality",
    "plan_quality",
    "select_by_quality",
]

#: Metadata key of the raw quality score (the heads' output, the mean over heads).
QUALITY_SCORE = "quality_score"
#: The top of the heads' label scale (0–5 educational value).
QUALITY_SCALE = 5.0
#: Quality does not move the ranking unless asked.
DEFAULT_QUALITY_WEIGHT = 0.0


def normalize_quality(raw: float) -> float:
    """Map a raw head score to ``[0, 1]``: ``clip(raw / 5, 0, 1)``.

    Raises:
        ValueError: If ``raw`` is NaN or infinite.

    Example:
        >>> normalize_quality(3.5), normalize_quality(5.4), normalize_quality(-0.2)
        (0.7, 1.0, 0.0)
    """
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"quality score must be finite, got {raw!r}")
    return min(max(value / QUALITY_SCALE, 0.0), 1.0)


def check_min_quality(value: Any, name: str = "min_quality") -> float | None:
    """``None`` (no filter) or a number in ``[0, 5]`` on the heads' raw scale.

    Raises:
        TypeError: If ``value`` is not a number (booleans and strings are refused).
        ValueError: If it is outside ``[0, 5]`` or NaN.

    Example:
        >>> check_min_quality(2.5)
        2.5
    """
    return None if value is None else check_float(value, name, 0.0, QUALITY_SCALE)


def check_quality_weight(value: Any, name: str = "quality_weight") -> float:
    """A number in ``[0, 1]``; ``None`` means ``0`` (quality does not move the ranking).

    Raises:
        TypeError: If ``value`` is not a number.
        ValueError: If it is outside ``[0, 1]`` or NaN.

    Example:
        >>> check_quality_weight(0.3)
        0.3
    """
    return DEFAULT_QUALITY_WEIGHT if value is None else check_float(value, name, 0.0, 1.0)


def blend(relevance: float, quality: float, quality_weight: float) -> float:
    """``(1 − w) · relevance + w · normalize_quality(quality)``; exactly ``relevance`` when ``w = 0``.

    Args:
        relevance: The reranker's score in ``[0, 1]``.
        quality: The raw quality score.
        quality_weight: ``w`` in ``[0, 1]``.

    Example:
        >>> round(blend(0.8, 2.5, 0.2), 6)
        0.74
    """
    normalized = normalize_quality(quality)
    if quality_weight == 0.0:
        return float(relevance)
    return (1.0 - quality_weight) * float(relevance) + quality_weight * normalized


def engine_cuts(
    *,
    min_quality: float | None,
    quality_weight: float,
    top_n: int | None,
    score_threshold: float | None,
) -> tuple[int | None, float | None]:
    """The ``top_n`` and ``score_threshold`` an adapter may let the reranker apply itself.

    The reranker ranks by relevance, before the quality rules. It may cut only what the quality
    rules would cut anyway:

    * ``top_n`` only when quality cannot reorder or remove documents (``w = 0`` and no
      ``min_quality``): then the quality is computed for the returned documents only;
    * ``score_threshold`` as the weakest relevance that can still reach it:
      ``(t − w) / (1 − w)`` (``None`` when that is ``<= 0`` or ``w = 1``); exactly ``t`` when ``w = 0``.

    :func:`apply_quality` then applies the caller's real rules to what comes back.

    Returns:
        ``(top_n, score_threshold)`` to pass to the reranker.

    Example:
        >>> engine_cuts(min_quality=None, quality_weight=0.0, top_n=3, score_threshold=0.5)
        (3, 0.5)
        >>> top_n, threshold = engine_cuts(min_quality=2.0, quality_weight=0.5, top_n=3, score_threshold=0.75)
        >>> top_n, round(threshold, 6)
        (None, 0.5)
    """
    weight = check_quality_weight(quality_weight)
    check_min_quality(min_quality)
    top_n = check_top_n(top_n)
    threshold = check_threshold(score_threshold)
    engine_top_n = top_n if weight == 0.0 and min_quality is None else None
    if threshold is None or weight == 0.0:
        return engine_top_n, threshold
    if weight >= 1.0:
        return engine_top_n, None
    relaxed = (threshold - weight) / (1.0 - weight) - 1e-9  # float slack: never cut a reachable one
    return engine_top_n, (relaxed if relaxed > 0.0 else None)


@dataclass(frozen=True)
class QualityDecision:
    """One document to return, with its scores.

    Attributes:
        index: The document's index, as given in ``ranked``.
        relevance: The reranker's raw relevance (→ ``relevance_score`` metadata).
        quality: The raw quality score (→ ``quality_score`` metadata).
        quality_normalized: ``normalize_quality(quality)``.
        score: The blended score (→ the framework's score slot); equals ``relevance`` when ``w = 0``.
    """

    index: int
    relevance: float
    quality: float
    quality_normalized: float
    score: float


@dataclass(frozen=True)
class QualityPlan:
    """Step one of :func:`apply_quality`: the rules, and which documents need a quality score.

    Attributes:
        to_score: Indices whose quality is needed, in ``ranked`` order (possibly empty).
        candidates: ``(index, relevance)`` of the documents still in play, in ``ranked`` order.
        dropped_not_returnable: Indices set aside because they cannot be returned.
        dropped_by_threshold: Indices that fail ``score_threshold`` whatever their quality.
        dropped_by_top_n: Indices outside the top ``top_n`` whatever their quality.
        min_quality: The validated filter.
        quality_weight: The validated weight.
        score_threshold: The validated threshold.
        top_n: The validated count limit.
    """

    to_score: list[int]
    candidates: list[tuple[int, float]]
    dropped_not_returnable: list[int]
    dropped_by_threshold: list[int]
    dropped_by_top_n: list[int]
    min_quality: float | None
    quality_weight: float
    score_threshold: float | None
    top_n: int | None


@dataclass(frozen=True)
class QualityOutcome:
    """What :func:`apply_quality` decided; every input index is in exactly one of the lists.

    Attributes:
        kept: The documents to return, best blended score first.
        dropped_low_quality: Indices below ``min_quality`` (a rule the caller set), input order.
        dropped_by_threshold: Indices whose blended score is below ``score_threshold``.
        dropped_by_top_n: Indices cut by ``top_n``.
        dropped_not_returnable: Indices the caller marked as not returnable.
        quality: Raw quality of every document that was scored (kept or dropped).
    """

    kept: list[QualityDecision]
    dropped_low_quality: list[int] = field(default_factory=list)
    dropped_by_threshold: list[int] = field(default_factory=list)
    dropped_by_top_n: list[int] = field(default_factory=list)
    dropped_not_returnable: list[int] = field(default_factory=list)
    quality: dict[int, float] = field(default_factory=dict)


def _check_ranked(ranked: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    if isinstance(ranked, (str, bytes)) or not isinstance(ranked, Sequence):
        raise TypeError(f"ranked must be a sequence of (index, relevance) pairs, got {type(ranked).__name__}")
    out: list[tuple[int, float]] = []
    seen: set[int] = set()
    for position, pair in enumerate(ranked):
        if not isinstance(pair, Sequence) or isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise TypeError(f"ranked[{position}] must be an (index, relevance) pair, got {pair!r:.80}")
        index = check_int(pair[0], f"ranked[{position}] index", minimum=0)
        relevance = check_float(pair[1], f"ranked[{position}] relevance")
        if index in seen:
            raise ValueError(f"ranked[{position}] repeats index {index}")
        seen.add(index)
        out.append((index, relevance))
    return out


def plan_quality(
    ranked: Sequence[tuple[int, float]],
    *,
    returnable: Collection[int] | None = None,
    min_quality: float | None = None,
    quality_weight: float | None = DEFAULT_QUALITY_WEIGHT,
    score_threshold: float | None = None,
    top_n: int | None = None,
) -> QualityPlan:
    """Validate the rules and decide which documents need a quality score (see :func:`apply_quality`).

    Raises:
        TypeError: On a malformed ``ranked`` entry or an option of the wrong type.
        ValueError: On a repeated index or an option out of range.
    """
    pairs = _check_ranked(ranked)
    min_quality = check_min_quality(min_quality)
    weight = check_quality_weight(quality_weight)
    threshold = check_threshold(score_threshold)
    top_n = check_top_n(top_n)
    allowed = None if returnable is None else set(returnable)
    not_returnable = [i for i, _ in pairs if allowed is not None and i not in allowed]
    live = [(i, r) for i, r in pairs if allowed is None or i in allowed]

    def upper(r: float) -> float:  # the blended score with the best possible quality
        return r if weight == 0.0 else (1.0 - weight) * r + weight * 1.0

    def lower(r: float) -> float:  # ... with the worst
        return r if weight == 0.0 else (1.0 - weight) * r + weight * 0.0

    by_threshold = [i for i, r in live if threshold is not None and upper(r) < threshold]
    live = [(i, r) for i, r in live if threshold is None or upper(r) >= threshold]
    by_top_n: list[int] = []
    if top_n is not None and min_quality is None:
        # Documents sure to pass every rule but top_n; if top_n of them are sure to score at least
        # `floor`, a document that cannot reach `floor` is sure to fall outside the top top_n.
        sure = sorted((lower(r) for _, r in live if threshold is None or lower(r) >= threshold), reverse=True)
        if len(sure) >= top_n:
            floor = sure[top_n - 1]
            by_top_n = [i for i, r in live if upper(r) < floor]
            live = [(i, r) for i, r in live if upper(r) >= floor]
    return QualityPlan(
        to_score=[i for i, _ in live],
        candidates=live,
        dropped_not_returnable=not_returnable,
        dropped_by_threshold=by_threshold,
        dropped_by_top_n=by_top_n,
        min_quality=min_quality,
        quality_weight=weight,
        score_threshold=threshold,
        top_n=top_n,
    )


def finish_quality(plan: QualityPlan, scores: Sequence[float]) -> QualityOutcome:
    """Apply the rules, given the raw quality of ``plan.to_score`` (same order).

    Raises:
        ValueError: If ``scores`` has the wrong length or holds a non-finite value (naming its index).
    """
    if isinstance(scores, (str, bytes)) or len(scores) != len(plan.to_score):
        raise ValueError(f"expected {len(plan.to_score)} quality scores, got {len(scores)}")
    quality: dict[int, float] = {}
    for index, value in zip(plan.to_score, scores, strict=True):
        raw = check_float(value, f"quality score of document {index}")
        if not math.isfinite(raw):
            raise ValueError(f"quality score of document {index} must be finite, got {value!r}")
        quality[index] = raw
    low: list[int] = []
    by_threshold = list(plan.dropped_by_threshold)
    passing: list[QualityDecision] = []
    for index, relevance in plan.candidates:
        raw = quality[index]
        if plan.min_quality is not None and raw < plan.min_quality:
            low.append(index)
            continue
        score = blend(relevance, raw, plan.quality_weight)
        if plan.score_threshold is not None and score < plan.score_threshold:
            by_threshold.append(index)
            continue
        passing.append(QualityDecision(index, relevance, raw, normalize_quality(raw), score))
    passing.sort(key=lambda d: -d.score)  # stable: ties keep the input order
    by_top_n = list(plan.dropped_by_top_n)
    if plan.top_n is not None:
        by_top_n.extend(d.index for d in passing[plan.top_n :])
        passing = passing[: plan.top_n]
    return QualityOutcome(
        kept=passing,
        dropped_low_quality=low,
        dropped_by_threshold=by_threshold,
        dropped_by_top_n=by_top_n,
        dropped_not_returnable=list(plan.dropped_not_returnable),
        quality=quality,
    )


def apply_quality(
    ranked: Sequence[tuple[int, float]],
    quality: Callable[[list[int]], Sequence[float]],
    *,
    returnable: Collection[int] | None = None,
    min_quality: float | None = None,
    quality_weight: float | None = DEFAULT_QUALITY_WEIGHT,
    score_threshold: float | None = None,
    top_n: int | None = None,
) -> QualityOutcome:
    """Apply quality filter, blend, threshold and top-n (in that order) to a reranker's results.

    Args:
        ranked: ``(index, relevance)`` per document, in the reranker's order (ties keep it);
            ``index`` is whatever the caller uses to find the document again (unique ints >= 0).
        quality: Called at most once, with the indices whose quality is needed (in ``ranked``
            order), returning their raw quality scores in that order; not called when none is.
        returnable: Indices that can still be returned (``None``: all). The others are set aside
            first, never scored, and take no ``top_n`` slot.
        min_quality: Drop documents whose raw quality is below this (``[0, 5]``; ``None``: no filter).
        quality_weight: ``w`` in ``[0, 1]`` for the blend (``None`` or ``0``: relevance order).
        score_threshold: Drop documents whose blended score is below this (``[0, 1]``).
        top_n: Keep at most this many (``>= 1``).

    Returns:
        A :class:`QualityOutcome`: ``kept`` best first, and the dropped indices by rule.

    Raises:
        TypeError, ValueError: On malformed input or options (naming them).

    Example:
        >>> raw = {0: 1.0, 1: 5.0, 2: 4.0}
        >>> out = apply_quality([(0, 0.9), (1, 0.8), (2, 0.1)], lambda idx: [raw[i] for i in idx],
        ...                     quality_weight=0.5, top_n=1)
        >>> [(d.index, round(d.score, 2)) for d in out.kept], out.dropped_by_top_n
        ([(1, 0.9)], [0, 2])
    """
    plan = plan_quality(
        ranked,
        returnable=returnable,
        min_quality=min_quality,
        quality_weight=quality_weight,
        score_threshold=score_threshold,
        top_n=top_n,
    )
    scores = list(quality(list(plan.to_score))) if plan.to_score else []
    return finish_quality(plan, scores)


async def aapply_quality(
    ranked: Sequence[tuple[int, float]],
    quality: Callable[[list[int]], Awaitable[Sequence[float]]],
    *,
    returnable: Collection[int] | None = None,
    min_quality: float | None = None,
    quality_weight: float | None = DEFAULT_QUALITY_WEIGHT,
    score_threshold: float | None = None,
    top_n: int | None = None,
) -> QualityOutcome:
    """:func:`apply_quality` with an awaitable ``quality`` (e.g. built on ``QualityScorer.ascore``)."""
    plan = plan_quality(
        ranked,
        returnable=returnable,
        min_quality=min_quality,
        quality_weight=quality_weight,
        score_threshold=score_threshold,
        top_n=top_n,
    )
    scores = list(await quality(list(plan.to_score))) if plan.to_score else []
    return finish_quality(plan, scores)


def select_by_quality(
    scores: Sequence[float], *, min_quality: float | None = None, sort_by_quality: bool = False
) -> tuple[list[int], list[int]]:
    """The standalone components' rule: keep by ``min_quality``, optionally best quality first.

    Args:
        scores: Raw quality per document, in input order.
        min_quality: Drop documents below this (``[0, 5]``; ``None``: keep all).
        sort_by_quality: Return the kept ones best quality first (ties keep the input order);
            otherwise in input order.

    Returns:
        ``(kept, dropped)``: indices into ``scores``.

    Example:
        >>> select_by_quality([1.0, 3.0, 2.0], min_quality=1.5, sort_by_quality=True)
        ([1, 2], [0])
    """
    min_quality = check_min_quality(min_quality)
    kept = [i for i, s in enumerate(scores) if min_quality is None or s >= min_quality]
    dropped = [i for i, s in enumerate(scores) if min_quality is not None and s < min_quality]
    if sort_by_quality:
        kept.sort(key=lambda i: -scores[i])
    return kept, dropped
