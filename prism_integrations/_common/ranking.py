"""One rerank call for an adapter: check the items, one engine call, map the results back by index.

An adapter turns its framework objects into :class:`Item` (text or ``None``, metadata) after
:func:`check_items` has checked their type, calls :func:`rerank_items` (or :func:`arerank_items`)
and builds its output from the returned :class:`Ranking`: copies of the ranked documents, then
copies of the items without text. The rules, written once for the three adapters:

* Order: best score first (the engine's order; ties by input position).
* Filtering: only by rules the caller set: ``score_threshold``, then ``top_n``, then
  ``drop_irrelevant``.
* Body: a kept, relevant document's body becomes its evidence passage when ``use_evidence`` is on,
  the evidence is complete and, with ``grounded_only`` (the default), the grounding check finds no
  unsupported verbatim item in it (:func:`prism_core.check_grounding`); otherwise the original
  body is kept (nothing is lost). A result whose backend did not check its evidence (a custom
  :class:`prism_core.Reranker`) is checked here, against the original body.
* Metadata: the caller's keys first (copied), then ours, the same for every backend:
  ``relevance_score``, ``contribution`` (``None`` when ``add_contribution`` is off, on a score-only
  backend, or when absent), ``evidence_used`` and, only when the body was swapped and
  ``keep_original`` is on, ``original_content``; whenever evidence was generated, ``grounding``,
  ``unsupported`` (a list) and ``evidence_spans`` (per evidence sentence ``[start, end]`` in the
  original body, or ``None``); and, only when ``grounded_only`` kept a complete evidence out,
  ``evidence_rejected: "ungrounded"``. A key of ours already in the caller's metadata (a
  stale ``relevance_score`` from an earlier reranker) is replaced and moved to the end.
* Items without text (a Haystack ``Document`` whose ``content`` is ``None``, a LlamaIndex image-only
  node) are not scored: they come back after the ranked documents, in input order, unchanged
  (copied, none of our keys), and a warning names their positions. ``top_n``, ``score_threshold``
  and ``drop_irrelevant`` apply to the ranked documents only, so nothing the model cannot judge is
  dropped.

With a quality prior (``settings.quality``, see :mod:`prism_core.quality.blend`) the engine is still
called once, with only the cuts the quality rules allow (:meth:`RerankSettings.engine_cuts`); then:

* Documents that cannot be returned (irrelevant ones when ``drop_irrelevant`` is on) are set aside
  first: they are never scored for quality and take no ``top_n`` slot.
* The rules, in order: quality filter (``min_quality``, on the raw 0–5 scale), blend
  ``(1 − w) · relevance + w · clip(quality / 5, 0, 1)``, ``score_threshold`` on the blended score,
  ``top_n`` on the blended order (best first; ties keep the relevance order).
* Quality is computed, in one scorer call on the ORIGINAL texts (never the evidence), only for the
  documents that can still be returned.
* Metadata: ``relevance_score`` is the raw relevance; ``quality_score`` (the raw quality) comes last;
  :attr:`KeptDocument.score` (the framework's score slot) is the blended score. Documents dropped by
  ``min_quality`` are listed in :attr:`Ranking.dropped_low_quality` and logged (DEBUG) as dropped by
  the caller's rule. Items without text still pass through unscored at the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prism_core.grounding import ground_result
from prism_core.protocol import Reranker
from prism_core.quality.blend import QUALITY_SCORE, QualityOutcome
from prism_core.quality.compose import (
    acompose_quality,
    check_result_indices,
    compose_quality,
    hold_to_rules,
    partition_texts,
    unscored_in_input_order,
)
from prism_core.results import PrismResult
from prism_core.validation import CheckedQuery, CheckedTexts, check_query
from prism_integrations._common.budgets import EVIDENCE_SKIPPED, SCORED, abudget_ranking, budget_ranking
from prism_integrations._common.copying import merge_metadata
from prism_integrations._common.engine import EngineResolver
from prism_integrations._common.options import (
    CONTRIBUTION,
    EVIDENCE_REJECTED,
    EVIDENCE_SPANS,
    EVIDENCE_USED,
    GROUNDING,
    ORIGINAL_CONTENT,
    REJECTED_UNGROUNDED,
    RELEVANCE_SCORE,
    UNSUPPORTED,
    RerankSettings,
)

__all__ = [
    "Item",
    "KeptDocument",
    "Ranking",
    "arerank_items",
    "build_kept_documents",
    "check_items",
    "rerank_items",
]

logger = logging.getLogger(__name__)


def check_items(
    items: Any, expected: type | tuple[type, ...], what: str, name: str = "documents"
) -> list[Any]:
    """Return ``items`` as a list after checking that every item is an ``expected`` instance.

    Args:
        items: What the caller passed.
        expected: The class (or classes) an item must be.
        what: The expected type in words, e.g. ``"a LangChain Document"``.
        name: The parameter's name in the message.

    Raises:
        TypeError: ``items`` is not a list-like sequence (a string, a mapping, a single item...), or
            an item has the wrong type; the message names the position, e.g.
            ``documents[2] must be a LangChain Document, got str``.

    Example:
        >>> check_items(["a", 1], str, "a str")
        Traceback (most recent call last):
        ...
        TypeError: documents[1] must be a str, got int
    """
    if isinstance(items, (str, bytes, Mapping, expected)) or not isinstance(items, Sequence):
        plural = what.removeprefix("a ").removeprefix("an ") + "s"
        raise TypeError(f"{name} must be a list of {plural}, got {type(items).__name__}")
    out = list(items)
    for i, item in enumerate(out):
        if not isinstance(item, expected):
            raise TypeError(f"{name}[{i}] must be {what}, got {type(item).__name__}")
    return out


@dataclass(frozen=True)
class Item:
    """One input item, framework-free: its text (``None``: it has none, it is not scored) and metadata."""

    text: str | None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class KeptDocument:
    """One ranked document an adapter returns, described framework-free.

    Attributes:
        index: Position of the document in the caller's input.
        content: The new body (evidence passage or original body).
        metadata: The full new metadata: a copy of the caller's, then our keys.
        added_keys: Our keys written into ``metadata``, in order.
        score: The score for the framework's score slot: the relevance score, or with a quality
            prior the blended score; ``None`` for a document the time budget left unscored.
        evidence_used: Whether ``content`` is the evidence passage.
        result: The engine's result for this document (its ``index`` is the engine call's position).
        quality: The raw quality score with a quality prior, else ``None``.
    """

    index: int
    content: str
    metadata: dict[str, Any]
    added_keys: tuple[str, ...]
    score: float | None
    evidence_used: bool
    result: PrismResult
    quality: float | None = None

    @property
    def relevance(self) -> float:
        """The reranker's raw relevance score (``metadata["relevance_score"]``)."""
        return float(self.result.score)


@dataclass(frozen=True)
class Ranking:
    """What one call returns: the ranked documents (best first), then the positions left unscored.

    ``dropped_low_quality`` lists the caller's positions that ``min_quality`` dropped (input order);
    ``dropped_by_budget`` the ones ``max_context_tokens`` left out (in rank order). ``kept`` ends
    with the documents the time budget left unscored (``result.scored`` is ``False``), in input order.
    """

    kept: list[KeptDocument] = field(default_factory=list)
    unscored: list[int] = field(default_factory=list)
    dropped_low_quality: list[int] = field(default_factory=list)
    dropped_by_budget: list[int] = field(default_factory=list)


def _check_results(results: Sequence[PrismResult], n_inputs: int, settings: RerankSettings) -> None:
    check_result_indices(results, n_inputs)
    if settings.engine_cuts() == (None, None) and len(results) != n_inputs:
        logger.warning(
            "The reranker returned %d results for %d documents without top_n or score_threshold; "
            "the missing documents are left out",
            len(results),
            n_inputs,
        )


def build_kept_documents(
    results: Sequence[PrismResult],
    texts: Sequence[str],
    metadatas: Sequence[Mapping[str, Any] | None],
    settings: RerankSettings,
    positions: Sequence[int] | None = None,
) -> list[KeptDocument]:
    """Turn the engine's results into the documents to return, best first.

    Re-applies ``score_threshold`` and ``top_n`` (in that order, as the engine does) so a
    :class:`prism_core.Reranker` that ignores them is still held to the caller's rules; then leaves
    out irrelevant documents when ``drop_irrelevant`` is on.

    Args:
        results: The engine's results (``index`` refers to ``texts``).
        texts: The bodies the engine saw, in call order.
        metadatas: The caller's metadata per text (not modified).
        settings: The rules to apply.
        positions: The caller's position of each text (default: the same as in ``texts``).

    Raises:
        ValueError: If the inputs disagree in length or a result index is invalid or repeated.
    """
    if len(texts) != len(metadatas):
        raise ValueError(f"Got {len(texts)} texts but {len(metadatas)} metadata entries")
    positions = list(range(len(texts))) if positions is None else list(positions)
    _check_results(results, len(texts), settings)
    kept: list[KeptDocument] = []
    scored = [r for r in results if r.scored]
    for result in hold_to_rules(scored, settings.top_n, settings.score_threshold):
        if settings.drop_irrelevant and not result.relevant:
            continue
        i = result.index
        kept.append(_kept(result, texts[i], metadatas[i], settings, positions[i], score=float(result.score)))
    kept.extend(_unscored_kept(results, texts, metadatas, settings, positions))
    return kept


def _unscored_kept(
    results: Sequence[PrismResult],
    texts: Sequence[str],
    metadatas: Sequence[Mapping[str, Any] | None],
    settings: RerankSettings,
    positions: Sequence[int],
) -> list[KeptDocument]:
    """The documents the time budget left unscored, in input order, bodies unchanged."""
    out = []
    for result in unscored_in_input_order(results):
        i = result.index
        ours: dict[str, Any] = {
            RELEVANCE_SCORE: None,
            CONTRIBUTION: None,
            EVIDENCE_USED: False,
            SCORED: False,
        }
        out.append(
            KeptDocument(
                index=positions[i],
                content=texts[i],
                metadata=merge_metadata(metadatas[i], ours),
                added_keys=tuple(ours),
                score=None,
                evidence_used=False,
                result=result,
            )
        )
    return out


def _kept(
    result: PrismResult,
    original: str,
    metadata: Mapping[str, Any] | None,
    settings: RerankSettings,
    position: int,
    *,
    score: float,
    quality: float | None = None,
) -> KeptDocument:
    """One returned document: the body rule, then the metadata (``quality_score`` last, when given)."""
    result = ground_result(result, original)
    evidence = result.evidence
    eligible = bool(
        settings.use_evidence and result.relevant and evidence is not None and result.evidence_complete
    )
    rejected = eligible and settings.grounded_only and result.grounded is not True
    swap = eligible and not rejected
    ours: dict[str, Any] = {
        RELEVANCE_SCORE: float(result.score),
        CONTRIBUTION: result.contribution if settings.add_contribution else None,
        EVIDENCE_USED: swap,
    }
    if swap and settings.keep_original:
        ours[ORIGINAL_CONTENT] = original
    if evidence is not None:
        ours[GROUNDING] = result.grounding
        ours[UNSUPPORTED] = list(result.unsupported or ())
        spans = result.evidence_spans
        ours[EVIDENCE_SPANS] = None if spans is None else [None if s is None else list(s) for s in spans]
    if rejected:
        ours[EVIDENCE_REJECTED] = REJECTED_UNGROUNDED
        logger.debug(
            "evidence of document %d not swapped in (grounded_only): unsupported %s",
            position,
            list(result.unsupported or ()),
        )
    if settings.time_budget is not None:
        ours[SCORED] = True
        if result.evidence_skipped is not None:
            ours[EVIDENCE_SKIPPED] = result.evidence_skipped
    if quality is not None:
        ours[QUALITY_SCORE] = quality
    return KeptDocument(
        index=position,
        content=evidence if swap and evidence is not None else original,
        metadata=merge_metadata(metadata, ours),
        added_keys=tuple(ours),
        score=score,
        evidence_used=swap,
        result=result,
        quality=quality,
    )


def _finish_quality(
    results: Sequence[PrismResult],
    texts: list[str],
    items: Sequence[Item],
    scored: list[int],
    unscored: list[int],
    settings: RerankSettings,
    outcome: QualityOutcome,
    name: str,
) -> Ranking:
    by_index = {r.index: r for r in results}
    kept = [
        _kept(
            by_index[d.index],
            texts[d.index],
            items[scored[d.index]].metadata,
            settings,
            scored[d.index],
            score=d.score,
            quality=d.quality,
        )
        for d in outcome.kept
    ]
    kept.extend(_unscored_kept(results, texts, [items[i].metadata for i in scored], settings, scored))
    low = [scored[i] for i in sorted(outcome.dropped_low_quality)]
    if low:
        shown = ", ".join(f"{name}[{i}]" for i in low[:10]) + (", ..." if len(low) > 10 else "")
        logger.debug(
            "dropped %d of %d %s by the caller's rule min_quality=%s (%s)",
            len(low),
            len(items),
            name,
            settings.min_quality,
            shown,
        )
    logger.debug(
        "kept %d of %d %s (%d unscored; quality computed for %d)",
        len(kept),
        len(items),
        name,
        len(unscored),
        len(outcome.quality),
    )
    return Ranking(kept, unscored, low)


def _prepare(query: Any, items: Sequence[Item], name: str) -> tuple[str, list[int], list[str], list[int]]:
    query = CheckedQuery(check_query(query))  # the engine does not check it again
    scored, texts, unscored = partition_texts(
        [item.text for item in items],
        name,
        logger=logger,
        fate="they are not scored and come back unchanged after the ranked ones",
    )
    return query, scored, texts, unscored


def _finish(
    results: Sequence[PrismResult],
    texts: list[str],
    items: Sequence[Item],
    scored: list[int],
    unscored: list[int],
    settings: RerankSettings,
) -> Ranking:
    metadatas = [items[i].metadata for i in scored]
    kept = build_kept_documents(results, texts, metadatas, settings, positions=scored)
    logger.debug("kept %d of %d documents (%d unscored)", len(kept), len(items), len(unscored))
    return Ranking(kept, unscored)


def _quality_rules(settings: RerankSettings) -> dict[str, Any]:
    return {
        "min_quality": settings.min_quality,
        "quality_weight": settings.quality_weight,
        "score_threshold": settings.score_threshold,
        "top_n": settings.top_n,
        "drop_irrelevant": settings.drop_irrelevant,
    }


def rerank_items(
    resolver: EngineResolver,
    query: Any,
    items: Sequence[Item],
    settings: RerankSettings,
    *,
    adapter: str,
    name: str = "documents",
    get_engine: Callable[[], Reranker] | None = None,
) -> Ranking:
    """Check the query and texts, make the ONE engine call, and say what to return.

    Nothing touches the engine when no item has text (it is not even looked up). With a quality
    prior (``settings.quality``), the quality rules follow (see the module docstring), with at most
    one scorer call.

    Args:
        resolver: The adapter's engine.
        query: The query (checked: a non-blank string UTF-8 can encode).
        items: The items, in the caller's order.
        settings: The rules for this call.
        adapter: The adapter's class name, for log lines.
        name: What the caller calls the items (``documents``, ``nodes``), for messages.
        get_engine: Returns the engine instead of ``resolver.get()`` (Haystack's: warmed up
            first); not called when no item has text.

    Raises:
        TypeError: A query that is not a string.
        ValueError: A blank query, or a text with a lone surrogate (named by its position).
    """
    query, scored, texts, unscored = _prepare(query, items, name)
    if not texts:
        return Ranking([], unscored)
    engine: Reranker = resolver.get() if get_engine is None else get_engine()
    results = engine.rerank(query, texts, **resolver.call_kwargs(engine, settings, adapter))
    scorer = settings.quality
    if scorer is None:
        return budget_ranking(
            _finish(results, texts, items, scored, unscored, settings), settings, engine, name
        )
    _check_results(results, len(texts), settings)
    outcome = compose_quality(
        results,
        len(texts),
        lambda indices: scorer.score(CheckedTexts(texts[i] for i in indices)),
        **_quality_rules(settings),
    )
    ranking = _finish_quality(results, texts, items, scored, unscored, settings, outcome, name)
    return budget_ranking(ranking, settings, engine, name)


async def arerank_items(
    resolver: EngineResolver,
    query: Any,
    items: Sequence[Item],
    settings: RerankSettings,
    *,
    adapter: str,
    name: str = "documents",
    get_engine: Callable[[], Reranker] | None = None,
) -> Ranking:
    """The same as :func:`rerank_items` through the engine's ``arerank`` and the scorer's ``ascore``
    (neither blocks the loop)."""
    query, scored, texts, unscored = _prepare(query, items, name)
    if not texts:
        return Ranking([], unscored)
    if get_engine is not None:  # it may load: off the loop
        engine: Reranker = await asyncio.to_thread(get_engine)
    else:
        engine = resolver.get() if resolver.ready else await asyncio.to_thread(resolver.get)
    results = await engine.arerank(query, texts, **resolver.call_kwargs(engine, settings, adapter))
    scorer = settings.quality
    if scorer is None:
        ranking = _finish(results, texts, items, scored, unscored, settings)
        return await abudget_ranking(ranking, settings, engine, name)
    _check_results(results, len(texts), settings)
    outcome = await acompose_quality(
        results,
        len(texts),
        lambda indices: scorer.ascore(CheckedTexts(texts[i] for i in indices)),
        **_quality_rules(settings),
    )
    ranking = _finish_quality(results, texts, items, scored, unscored, settings, outcome, name)
    return await abudget_ranking(ranking, settings, engine, name)
