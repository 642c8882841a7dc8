"""The evaluation harness: one evaluation end to end (first stage, every system, metrics, report files).

Example:
    >>> from prism_core import load_reranker
    >>> from prism_core.evaluation import System, evaluate, load_dataset, write_report
    >>> data = load_dataset("builtin")
    >>> reranker = load_reranker("infgrad/Prism-Qwen3.5-Reranker-0.8B")  # doctest: +SKIP
    >>> report = evaluate(data, [System("prism", reranker)], candidates=30)  # doctest: +SKIP
    >>> write_report(report, "eval-out")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prism_core.evaluation.datasets import EvalSet
from prism_core.evaluation.metrics import metric_names
from prism_core.evaluation.report import PLOT_FILE, build_report, write_json, write_markdown, write_plot
from prism_core.evaluation.retrieval import (
    BM25Retriever,
    Candidates,
    DenseRetriever,
    given_candidates,
    run_candidates,
)
from prism_core.evaluation.systems import SystemRun, first_stage_run, rerank_run, token_counter
from prism_core.protocol import Reranker
from prism_core.validation import check_positive_int

logger = logging.getLogger(__name__)

#: Candidates per query when none is asked for (BEIR input; JSONL input keeps all given documents).
DEFAULT_CANDIDATES = 30
#: Documents returned per query (the evidence pass and the token accounting).
DEFAULT_TOP_N = 10
FIRST_STAGES = ("bm25", "dense")


@dataclass(frozen=True)
class System:
    """A reranker to evaluate.

    Attributes:
        name: Display name (unique within one evaluation).
        reranker: Any :class:`prism_core.Reranker`.
        model: Model id or path (reported; a tiny random-weight directory is flagged).
        backend: Backend name (reported).
    """

    name: str
    reranker: Reranker
    model: str | None = None
    backend: str | None = None


def first_stage(
    data: EvalSet,
    *,
    retriever: str = "bm25",
    k: int | None = None,
    run_file: str | os.PathLike[str] | None = None,
    dense_model: str | None = None,
) -> tuple[str, int, Candidates]:
    """The first stage's candidates: given (JSONL), from a run file, BM25 or dense retrieval.

    Returns:
        ``(name, k, candidates)``: ``name`` is ``"given"``, ``"run"``, ``"bm25"`` or ``"dense"``;
        ``k`` the depth used.

    Raises:
        ValueError: An unknown retriever, or a retriever asked for on JSONL input.
        EvalDataError: A bad run file.
    """
    if k is not None:
        check_positive_int(k, "candidates")
    if run_file is not None:
        depth = DEFAULT_CANDIDATES if k is None else k
        return "run", depth, run_candidates(run_file, data, depth)
    if data.candidates is not None:
        given = given_candidates(data, k)
        depth = k if k is not None else max((len(c) for c in given.values()), default=0)
        return "given", depth, given
    depth = DEFAULT_CANDIDATES if k is None else k
    if retriever == "bm25":
        return "bm25", depth, BM25Retriever().retrieve(data, depth)
    if retriever == "dense":
        return "dense", depth, DenseRetriever(dense_model).retrieve(data, depth)
    raise ValueError(f"unknown retriever {retriever!r}; known: {', '.join(FIRST_STAGES)}")


def evaluate(
    data: EvalSet,
    systems: Sequence[System],
    *,
    retriever: str = "bm25",
    candidates: int | None = None,
    run_file: str | os.PathLike[str] | None = None,
    dense_model: str | None = None,
    top_n: int = DEFAULT_TOP_N,
    evidence: bool = True,
    max_queries: int | None = None,
    seed: int = 0,
    resamples: int = 10000,
    progress: bool = False,
    notes: Callable[[str], None] | None = None,
    settings: dict[str, Any] | None = None,
    grounded_only: bool = True,
    judge: Any = None,
    judge_max: int = 100,
) -> dict[str, Any]:
    """Run the first stage and every system, and return the report (see :mod:`.report`).

    Args:
        data: The evaluation set.
        systems: The rerankers, in report order (names must be unique).
        retriever: ``"bm25"`` or ``"dense"`` (BEIR input without ``run_file``).
        candidates: Candidates per query (default 30; JSONL input: every given document).
        run_file: A TREC run file giving the candidates instead of a retriever.
        dense_model: The sentence-transformers model of the dense retriever.
        top_n: Documents returned per query, for the evidence pass and token accounting.
        evidence: Run the evidence pass for backends that can generate evidence.
        max_queries: Evaluate only the first ``max_queries`` evaluable queries.
        seed: Seed of the randomisation tests.
        resamples: Resamples of the randomisation tests.
        progress: Progress bars on stderr.
        notes: Where to say, without a bar, how far each system got and about how long is left
            (after its first query and at each quarter); ``None``: say nothing.
        settings: Extra settings to record in the report.
        grounded_only: Token accounting swaps in only evidence that passes the grounding check.
        judge: An :class:`prism_core.evaluation.judge.LLMJudge` grading the evidence passages, or
            ``None``.
        judge_max: At most this many passages graded per system.

    Raises:
        ValueError: Duplicate system names, bad numbers, an unknown retriever.
        EvalDataError: Bad input files, or nothing to evaluate.
    """
    from prism_core.evaluation.datasets import EvalDataError

    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise ValueError(f"system names must be unique, got {names}")
    top_n = check_positive_int(top_n, "top_n")
    evaluable = data.evaluated_query_ids()
    if not evaluable:
        raise EvalDataError(
            "no query has a relevant (label > 0) judgment: nothing to evaluate", path=data.source
        )
    limited = 0
    if max_queries is not None:
        check_positive_int(max_queries, "max_queries")
        limited = max(0, len(evaluable) - max_queries)
        data = data.subset(evaluable[:max_queries] + data.no_relevant_query_ids())
    query_ids = data.evaluated_query_ids()
    stage, k, hits = first_stage(
        data, retriever=retriever, k=candidates, run_file=run_file, dense_model=dense_model
    )
    logger.info(
        "first stage %s: %d candidates for %d queries", stage, sum(map(len, hits.values())), len(hits)
    )

    runs: list[SystemRun] = []
    for system in systems:
        runs.append(
            rerank_run(
                system.name,
                system.reranker,
                data,
                hits,
                query_ids,
                model=system.model,
                backend=system.backend,
                top_n=top_n,
                evidence=evidence,
                progress=progress,
                notes=notes,
            )
        )
    if judge is not None:
        from prism_core.evaluation.judge import judge_run

        check_positive_int(judge_max, "judge_max")
        try:
            for run in runs:
                if run.evidence:
                    judge_run(run, data, judge, max_passages=judge_max)
        finally:
            judge.close()
    counter = next((c for c in (token_counter(s.reranker) for s in systems) if c is not None), None)
    counted_with = next((s.name for s in systems if token_counter(s.reranker) is not None), None)
    baseline = first_stage_run(stage, data, hits, query_ids, counter)
    if stage in names:
        baseline.name = f"{stage} (first stage)"
    report = build_report(
        data,
        hits,
        [baseline, *runs],
        first_stage=stage,
        k=k,
        top_n=top_n,
        metric_names=metric_names(k),
        seed=seed,
        resamples=resamples,
        queries_limited=limited,
        settings={
            "evidence": evidence,
            "first_stage_tokens_counted_with": counted_with,
            "judge": None if judge is None else {**judge.describe(), "max_passages": judge_max},
            **(settings or {}),
        },
        grounded_only=grounded_only,
    )
    return report


def write_report(
    report: dict[str, Any], out_dir: str | os.PathLike[str], *, plot: bool = True
) -> dict[str, Any]:
    """Write ``report.json``, ``report.md`` and (when matplotlib is there) the plot into ``out_dir``.

    Returns:
        ``{"json": path, "markdown": path, "plot": path or None, "plot_error": message or None}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {
        "json": write_json(report, out / "report.json"),
        "markdown": write_markdown(report, out / "report.md"),
        "plot": None,
        "plot_error": None,
    }
    if plot:
        try:
            written["plot"] = write_plot(report, out / PLOT_FILE)
        except ImportError as exc:
            written["plot_error"] = str(exc)
            logger.warning("plot skipped: %s", exc)
    return written
