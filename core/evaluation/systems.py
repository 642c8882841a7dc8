"""Running the systems under evaluation over the first stage's candidates, timing and counting tokens.

For every reranker and every evaluated query:

1. **Ranking pass**: ``rerank(query, candidates, evidence=False)``: every candidate scored and
   ranked (the metrics are computed on this full ranking); its wall time is the scoring latency.
2. **Evidence pass** (backends with ``capabilities.evidence``, unless turned off):
   ``rerank(query, top_docs, evidence=True)`` on the ranking's best ``top_n`` documents, the
   documents a pipeline would return: its results give the verdicts, evidence and token counts of
   the report's token accounting; its wall time is the evidence latency.

Token counts come from each result's ``document_tokens``/``evidence_tokens`` (the backend's own
tokenizer, the document as the model saw it, after truncation). When a backend leaves them
``None``, they are counted with the backend's tokenizer when it exposes one (the document then
counted whole), else left unknown (``None``), and the report says which.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prism_core.evaluation.datasets import EvalSet
from prism_core.evaluation.retrieval import Candidates
from prism_core.grounding import ground_result
from prism_core.protocol import Reranker
from prism_core.quality.compose import check_result_indices
from prism_core.results import PrismResult

logger = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]
"""Counts the tokens of a text with a backend's tokenizer."""


@dataclass(frozen=True, slots=True)
class DocOutcome:
    """One document as a system placed it.

    Attributes:
        doc_id: The document id.
        score: The system's score (the first stage's score for the baseline).
        relevant: The backend's verdict (``None`` for the first stage).
        document_tokens: The document's tokens as the model saw them (``None``: unknown).
        evidence_tokens: The evidence's tokens, when evidence was generated.
        evidence_complete: Contribution and evidence both opened and closed within the budget.
        truncated: The document was cut to fit ``max_length``.
        evidence: The evidence text, when generated.
        grounding: The evidence's support score (:func:`prism_core.check_grounding`), when generated.
        unsupported: The evidence's unsupported verbatim items, when generated.
    """

    doc_id: str
    score: float
    relevant: bool | None = None
    document_tokens: int | None = None
    evidence_tokens: int | None = None
    evidence_complete: bool = False
    truncated: bool = False
    evidence: str | None = None
    grounding: float | None = None
    unsupported: tuple[str, ...] | None = None

    @property
    def grounded(self) -> bool:
        """Evidence was generated and none of its verbatim items is unsupported."""
        return self.evidence is not None and self.unsupported is not None and not self.unsupported


@dataclass
class QueryRun:
    """One system's outcome for one query.

    Attributes:
        query_id: The query.
        ranking: Every candidate, best first (empty when the query failed or had no candidates).
        returned: The evidence pass's results (the best ``top_n``, in its order); ``None`` when no
            evidence pass ran.
        scoring_seconds: Wall time of the ranking pass (``None``: not timed, e.g. the first stage).
        evidence_seconds: Wall time of the evidence pass, when it ran.
        error: Why the query failed (``"ExceptionType: message"``), else ``None``.
    """

    query_id: str
    ranking: list[DocOutcome]
    returned: list[DocOutcome] | None = None
    scoring_seconds: float | None = None
    evidence_seconds: float | None = None
    error: str | None = None


@dataclass
class SystemRun:
    """Everything one system produced.

    Attributes:
        name: Unique display name.
        kind: ``"first-stage"`` or ``"reranker"``.
        model: Model id or path (``None`` for the first stage).
        backend: Backend name (``None`` for the first stage).
        config: The engine's resolved configuration (JSON-safe), when it says.
        evidence: The system can generate evidence and the evidence pass ran.
        meaningless: The model is a tiny random-weight checkpoint: its numbers mean nothing.
        token_source: ``"backend"`` (result fields), ``"tokenizer"`` (counted here), a mix
            (``"backend+tokenizer"``) or ``None`` (unknown).
        queries: Query id → outcome, for every evaluated query.
        judgments: ``(query_id, doc_id)`` → the LLM judge's grading of that evidence passage
            (:mod:`prism_core.evaluation.judge`), when a judge ran; else ``None``.
    """

    name: str
    kind: Literal["first-stage", "reranker"]
    model: str | None = None
    backend: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    evidence: bool = False
    meaningless: bool = False
    judgments: dict[tuple[str, str], dict[str, Any]] | None = None
    token_source: str | None = None
    queries: dict[str, QueryRun] = field(default_factory=dict)


def is_tiny_random_model(model: str | os.PathLike[str] | None) -> bool:
    """Whether ``model`` is a directory marked as a tiny random-weight checkpoint (its output is noise).

    Example:
        >>> is_tiny_random_model("infgrad/Prism-Qwen3.5-Reranker-0.8B")
        False
    """
    from prism_core.testing.tiny_models import TINY_MARKER

    if model is None:
        return False
    try:
        return (Path(model).expanduser() / TINY_MARKER).exists()
    except (OSError, ValueError):
        return False


def token_counter(reranker: Any) -> TokenCounter | None:
    """A token counter with the reranker's own tokenizer, or ``None`` when it exposes none.

    Uses the prompt tokenizer's ``count_tokens`` (plain-text encoding, as the backend encodes
    documents) when there is one, else ``tokenizer.encode(text, add_special_tokens=False)``.
    """
    try:
        prompts = getattr(reranker, "prompt_tokenizer", None)
    except Exception as exc:  # a property that loads the model may fail; then there is no counter
        logger.debug("no prompt tokenizer on %r: %s", reranker, exc)
        prompts = None
    count = getattr(prompts, "count_tokens", None)
    if callable(count):
        return lambda text: int(count(text))
    try:
        tokenizer = getattr(reranker, "tokenizer", None)
    except Exception as exc:
        logger.debug("no tokenizer on %r: %s", reranker, exc)
        tokenizer = None
    encode = getattr(tokenizer, "encode", None)
    if callable(encode):
        return lambda text: len(encode(text, add_special_tokens=False))
    return None


class _TokenSources:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def label(self) -> str | None:
        if "unknown" in self.seen:
            return None
        return "+".join(s for s in ("backend", "tokenizer") if s in self.seen) or None


def _outcome(
    result: PrismResult, doc_id: str, text: str, counter: TokenCounter | None, sources: _TokenSources
) -> DocOutcome:
    document_tokens = result.document_tokens
    if document_tokens is None and counter is not None:
        document_tokens = counter(text)
        sources.seen.add("tokenizer")
    elif document_tokens is not None:
        sources.seen.add("backend")
    else:
        sources.seen.add("unknown")
    evidence_tokens = result.evidence_tokens
    if evidence_tokens is None and result.evidence is not None and counter is not None:
        evidence_tokens = counter(result.evidence)
    result = ground_result(result, text)  # a backend that did not check its evidence is checked here
    return DocOutcome(
        doc_id=doc_id,
        score=float(result.score),
        relevant=bool(result.relevant),
        document_tokens=document_tokens,
        evidence_tokens=evidence_tokens,
        evidence_complete=bool(result.evidence_complete) and result.evidence is not None,
        truncated=bool(result.truncated),
        evidence=result.evidence,
        grounding=result.grounding,
        unsupported=result.unsupported,
    )


def first_stage_run(
    name: str, data: EvalSet, candidates: Candidates, query_ids: Sequence[str], counter: TokenCounter | None
) -> SystemRun:
    """The first stage as a system: candidates in retrieval order (the baseline).

    Token counts use ``counter`` (a reranker's tokenizer) on the whole document, when given.
    """
    run = SystemRun(name=name, kind="first-stage", token_source="tokenizer" if counter else None)
    for query_id in query_ids:
        ranking = [
            DocOutcome(
                doc_id=doc_id,
                score=float(score),
                document_tokens=counter(data.documents[doc_id].content) if counter else None,
            )
            for doc_id, score in candidates.get(query_id, [])
        ]
        run.queries[query_id] = QueryRun(query_id, ranking)
    return run


def _duration(seconds: float) -> str:
    """``"42 s"`` or ``"3.5 min"``.

    Example:
        >>> _duration(42.4), _duration(210)
        ('42 s', '3.5 min')
    """
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _progress(total: int, name: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="query", disable=not enabled, file=sys.stderr, leave=True)


def rerank_run(
    name: str,
    reranker: Reranker,
    data: EvalSet,
    candidates: Candidates,
    query_ids: Sequence[str],
    *,
    model: str | None = None,
    backend: str | None = None,
    top_n: int = 10,
    evidence: bool = True,
    progress: bool = False,
    warmup: bool = True,
    notes: Callable[[str], None] | None = None,
) -> SystemRun:
    """Run one reranker over every query's candidates (ranking pass, then evidence pass).

    A query whose rerank call raises is recorded with its error and an empty ranking (it then
    scores 0 on every metric); the run goes on.

    Args:
        name: Display name of the system.
        reranker: The reranker (loaded here if it has ``load()``, before any timing).
        data: The evaluation set.
        candidates: The first stage's candidates.
        query_ids: The evaluated queries, in order.
        model: Model id or path, for the report and the random-weight check.
        backend: Backend name, for the report.
        top_n: Documents a pipeline returns per query: the evidence pass runs on these.
        evidence: Run the evidence pass (when the backend can generate evidence).
        progress: Show a progress bar on stderr.
        warmup: Score one candidate once before timing (first-call overheads are not latency).
        notes: Where to say how far the run got and about how long is left, after the first query
            and at each quarter (for a run without a progress bar); ``None``: say nothing.
    """
    load = getattr(reranker, "load", None)
    if callable(load):
        load()
    can_generate = bool(getattr(reranker.capabilities, "evidence", False))
    config = getattr(reranker, "config", None)
    run = SystemRun(
        name=name,
        kind="reranker",
        model=model,
        backend=backend,
        config=dict(config) if isinstance(config, dict) else {},
        evidence=can_generate and evidence,
        meaningless=is_tiny_random_model(model),
    )
    counter = token_counter(reranker)
    sources = _TokenSources()
    if warmup:
        first = next((q for q in query_ids if candidates.get(q)), None)
        if first is not None:
            doc_id = candidates[first][0][0]
            try:
                reranker.score(data.queries[first], [data.documents[doc_id].content])
            except Exception as exc:  # the query's own run records the failure
                logger.warning("warm-up call of %s failed: %s: %s", name, type(exc).__name__, exc)
    total = len(query_ids)
    milestones = {1, total // 4, total // 2, 3 * total // 4} - {0, total}
    start = time.perf_counter()
    with _progress(total, name, progress) as bar:
        for done, query_id in enumerate(query_ids, 1):
            run.queries[query_id] = _rerank_query(
                reranker, data, query_id, candidates.get(query_id, []), counter, sources, top_n, run.evidence
            )
            bar.update(1)
            if notes is not None and done in milestones:
                elapsed = time.perf_counter() - start
                left = elapsed / done * (total - done)
                notes(f"{name}: {done}/{total} queries in {_duration(elapsed)}, about {_duration(left)} left")
    run.token_source = sources.label()
    return run


def _rerank_query(
    reranker: Reranker,
    data: EvalSet,
    query_id: str,
    hits: list[tuple[str, float]],
    counter: TokenCounter | None,
    sources: _TokenSources,
    top_n: int,
    evidence: bool,
) -> QueryRun:
    query = data.queries[query_id]
    doc_ids = [doc_id for doc_id, _ in hits]
    texts = [data.documents[d].content for d in doc_ids]
    if not doc_ids:
        return QueryRun(query_id, [])
    try:
        start = time.perf_counter()
        results = reranker.rerank(query, texts, evidence=False)
        scoring = time.perf_counter() - start
        check_result_indices(results, len(texts), expect_all=True, error=RuntimeError)
        ranking = [_outcome(r, doc_ids[r.index], texts[r.index], counter, sources) for r in results]
        returned: list[DocOutcome] | None = None
        evidence_seconds: float | None = None
        if evidence:
            top = ranking[:top_n]
            top_texts = [data.documents[o.doc_id].content for o in top]
            start = time.perf_counter()
            generated = reranker.rerank(query, top_texts, evidence=True)
            evidence_seconds = time.perf_counter() - start
            check_result_indices(generated, len(top_texts), expect_all=True, error=RuntimeError)
            returned = [
                _outcome(r, top[r.index].doc_id, top_texts[r.index], counter, sources) for r in generated
            ]
    except Exception as exc:
        logger.warning("query %r failed: %s: %s", query_id, type(exc).__name__, exc)
        return QueryRun(query_id, [], error=f"{type(exc).__name__}: {exc}")
    return QueryRun(query_id, ranking, returned, scoring, evidence_seconds)
