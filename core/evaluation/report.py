"""The evaluation report: one JSON-safe dict, written as ``report.json``, ``report.md`` and a PNG plot.

Per system the report holds the metrics (``ndcg@10``, ``mrr@10``, ``recall@10``,
``recall@<candidates>``), latency and throughput, token accounting, and counts that account for
every query and document. Token accounting follows what the framework adapters do by default
(``top_n`` documents returned, ``drop_irrelevant=True``, ``use_evidence=True``):

- ``original_tokens``: tokens of the ``top_n`` documents returned per query, summed over queries:
  what a plain reranker puts in an LLM's context.
- ``evidence_tokens``: tokens of the evidence passages that replace returned documents judged
  relevant with complete evidence (summed).
- ``context_tokens``: what the pipeline passes on: evidence for those documents, the original for
  relevant ones without complete evidence, nothing for documents judged irrelevant (dropped).
- ``tokens_saved_share``: ``1 - context_tokens / original_tokens``, the sum of
  ``saved_by_evidence_share`` (``(swapped_original_tokens - evidence_tokens) / original_tokens``:
  what the evidence swap saves) and ``saved_by_dropping_share`` (tokens of returned documents judged
  irrelevant, dropped, over ``original_tokens``).

Evidence is swapped in only when it passes the grounding check (the adapters' default
``grounded_only=True``): a complete evidence passage with an unsupported verbatim item keeps its
document's text. Per evidence system, ``grounding`` holds the share of generated evidence passages
that are fully grounded, their mean support score, the unsupported items per 100 passages and the
passages rejected by ``grounded_only``; with an LLM judge (``--judge``), ``judge`` holds its grades
and its agreement with the deterministic check (see :mod:`prism_core.evaluation.judge`).

For the first stage and score-only rerankers ``context_tokens == original_tokens``.

``report["per_query"][system][query_id]`` holds each query's metrics, its ranking (document ids,
best first), the returned documents with their verdicts, token counts and evidence text, its
timings, and its error when it failed: every number of the summary can be recomputed from it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prism_core.evaluation.datasets import EvalSet
from prism_core.evaluation.metrics import TESTED_METRICS, mean, paired_tests, per_query_metrics
from prism_core.evaluation.report_accounting import (
    _evidence_accounting,
    _grounding_accounting,
    _returned,
    _token_accounting,
)
from prism_core.evaluation.report_accounting import latency_summary as latency_summary
from prism_core.evaluation.report_markdown import banner_lines as banner_lines
from prism_core.evaluation.report_markdown import render_markdown as render_markdown
from prism_core.evaluation.report_markdown import write_markdown as write_markdown
from prism_core.evaluation.report_plot import write_plot as write_plot
from prism_core.evaluation.retrieval import Candidates
from prism_core.evaluation.systems import QueryRun, SystemRun

logger = logging.getLogger(__name__)

#: ``report["format"]``: bumped when the layout changes incompatibly.
REPORT_FORMAT = "prism-rerank-eval/1"
PLOT_FILE = "quality_vs_tokens.png"
MEANINGLESS_WARNING = (
    "TINY RANDOM-WEIGHT MODEL: {systems} {verb} a tiny locally built model with random weights. "
    "Its scores, verdicts, evidence, metrics and token savings are MEANINGLESS; the run only shows "
    "that the pipeline works end to end."
)


def _system_entry(
    run: SystemRun,
    data: EvalSet,
    candidates: Candidates,
    query_ids: Sequence[str],
    values: dict[str, dict[str, float]],
    top_n: int,
    grounded_only: bool = True,
) -> dict[str, Any]:
    queries = [run.queries[q] for q in query_ids]
    failed = [q for q in queries if q.error is not None]
    empty = [q for q in queries if q.error is None and not candidates.get(q.query_id)]
    ranked = [q for q in queries if q.error is None and candidates.get(q.query_id)]
    in_failed = sum(len(candidates.get(q.query_id, [])) for q in failed)
    entry: dict[str, Any] = {
        "kind": run.kind,
        "model": run.model,
        "backend": run.backend,
        "config": run.config,
        "meaningless": run.meaningless,
        "evidence": run.evidence,
    }
    entry.update({name: mean(per_query) for name, per_query in values.items()})
    entry["queries"] = {
        "evaluated": len(queries),
        "ranked": len(ranked),
        "failed": len(failed),
        "without_candidates": len(empty),
    }
    entry["failures"] = [{"query_id": q.query_id, "error": q.error} for q in failed]
    entry["documents"] = {
        "candidates": sum(len(candidates.get(q, [])) for q in query_ids),
        "ranked": sum(len(q.ranking) for q in ranked),
        "in_failed_queries": in_failed,
        "returned": sum(len(_returned(q, top_n)) for q in ranked),
        "truncated": sum(1 for q in ranked for d in q.ranking if d.truncated),
    }
    tokens = _token_accounting(run, ranked, top_n, grounded_only)
    entry["tokens"] = tokens
    entry["token_source"] = run.token_source
    if run.evidence:
        entry["original_tokens"] = tokens["original_tokens"]
        entry["evidence_tokens"] = tokens["evidence_tokens"]
        entry["evidence_stats"] = _evidence_accounting(ranked, data)
        entry["grounding"] = _grounding_accounting(ranked)
        if run.judgments is not None:
            from prism_core.evaluation.judge import judge_summary

            entry["judge"] = judge_summary(run.judgments)
    if run.kind == "reranker":
        scoring = [q.scoring_seconds for q in ranked if q.scoring_seconds is not None]
        evidence = [q.evidence_seconds for q in ranked if q.evidence_seconds is not None]
        totals = [(q.scoring_seconds or 0.0) + (q.evidence_seconds or 0.0) for q in ranked]
        entry["latency"] = latency_summary(totals)
        entry["scoring_latency"] = latency_summary(scoring)
        entry["evidence_latency"] = latency_summary(evidence) if run.evidence else None
        seconds = math.fsum(scoring)
        entry["documents_per_second"] = entry["documents"]["ranked"] / seconds if seconds > 0 else None
    return entry


def _query_detail(
    query: QueryRun, values: dict[str, dict[str, float]], metric_names: Sequence[str], top_n: int
) -> dict[str, Any]:
    """One query of one system: metrics, the ranking (document ids), the returned documents' tokens."""
    detail: dict[str, Any] = {n: values[n][query.query_id] for n in metric_names}
    detail["ranking"] = [d.doc_id for d in query.ranking]
    detail["returned"] = [
        {
            "doc_id": d.doc_id,
            "relevant": d.relevant,
            "document_tokens": d.document_tokens,
            "evidence_tokens": d.evidence_tokens,
            "evidence_complete": d.evidence_complete,
            "evidence": d.evidence,
            "grounding": d.grounding,
            "unsupported": None if d.unsupported is None else list(d.unsupported),
        }
        for d in _returned(query, top_n)
    ]
    if query.scoring_seconds is not None:
        detail["scoring_seconds"] = query.scoring_seconds
    if query.evidence_seconds is not None:
        detail["evidence_seconds"] = query.evidence_seconds
    if query.error is not None:
        detail["error"] = query.error
    return detail


def build_report(
    data: EvalSet,
    candidates: Candidates,
    runs: Sequence[SystemRun],
    *,
    first_stage: str,
    k: int,
    top_n: int,
    metric_names: Sequence[str],
    seed: int = 0,
    resamples: int = 10000,
    queries_limited: int = 0,
    settings: dict[str, Any] | None = None,
    grounded_only: bool = True,
) -> dict[str, Any]:
    """Compute metrics and tests and assemble the JSON-safe report.

    Args:
        data: The evaluation set (already limited to the queries run).
        candidates: The first stage's candidates.
        runs: The first stage's run first, then each reranker's.
        first_stage: Name of the first stage (``"bm25"``, ``"dense"``, ``"run"``, ``"given"``).
        k: Candidates per query asked of the first stage.
        top_n: Documents returned per query (token accounting, evidence pass).
        metric_names: Report metric names (:func:`prism_core.evaluation.metrics.metric_names`).
        seed: Seed of the randomisation tests.
        resamples: Resamples of the randomisation tests.
        queries_limited: Evaluable queries left out by a ``--max-queries`` limit.
        settings: Extra settings to record (command-line options).
        grounded_only: Token accounting swaps in only evidence that passes the grounding check
            (the adapters' default).
    """
    query_ids = data.evaluated_query_ids()
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    systems: dict[str, dict[str, Any]] = {}
    for run in runs:
        rankings = {q: [d.doc_id for d in r.ranking] for q, r in run.queries.items()}
        values = per_query_metrics(data.qrels, rankings, query_ids, metric_names)
        per_query[run.name] = {
            q: _query_detail(run.queries[q], values, metric_names, top_n) for q in query_ids
        }
        systems[run.name] = _system_entry(run, data, candidates, query_ids, values, top_n, grounded_only)

    significance = []
    names = [r.name for r in runs]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for metric in TESTED_METRICS:
                if metric not in metric_names:
                    continue
                test = paired_tests(
                    {q: per_query[a][q][metric] for q in query_ids},
                    {q: per_query[b][q][metric] for q in query_ids},
                    seed=seed,
                    resamples=resamples,
                )
                significance.append({"a": a, "b": b, "metric": metric, **test})

    meaningless = [r.name for r in runs if r.meaningless]
    warnings = []
    if meaningless:
        warnings.append(
            MEANINGLESS_WARNING.format(
                systems=", ".join(meaningless), verb="runs" if len(meaningless) == 1 else "run"
            )
        )
    for run in runs:
        failures = systems[run.name]["queries"]["failed"]
        if failures:
            warnings.append(f"{run.name}: {failures} of {len(query_ids)} queries failed and score 0")
    judged_relevant = {(q, d) for q in query_ids for d, label in data.qrels[q].items() if label > 0}
    retrieved = {(q, d) for q in query_ids for d, _ in candidates.get(q, [])}
    unique_docs = {d for q in query_ids for d, _ in candidates.get(q, [])}
    sizes = [len(candidates.get(q, [])) for q in query_ids]
    return {
        "format": REPORT_FORMAT,
        "meaningless": bool(meaningless),
        "warnings": warnings,
        "dataset": {
            "name": data.name,
            "format": data.format,
            "source": data.source,
            "split": data.split,
            "documents": len(data.documents),
            "queries_in_file": data.queries_in_file,
            "queries_in_split": len(data.queries) + queries_limited,
            "queries_evaluated": len(query_ids),
            "queries_without_relevant_judgments": data.no_relevant_query_ids(),
            "queries_left_out_by_limit": queries_limited,
            "judgments": data.judgments,
            "relevant_judgments": len(judged_relevant),
        },
        "first_stage": {
            "name": first_stage,
            "candidates_per_query": k,
            "candidates_total": sum(sizes),
            "queries_with_fewer_candidates": sum(1 for s in sizes if s < k),
            "queries_without_candidates": [q for q, s in zip(query_ids, sizes, strict=True) if s == 0],
            "documents_retrieved": len(unique_docs),
            "documents_never_retrieved": len(data.documents) - len(unique_docs),
            "relevant_retrieved": len(judged_relevant & retrieved),
            "relevant_judged": len(judged_relevant),
        },
        "settings": {
            "top_n": top_n,
            "grounded_only": grounded_only,
            "metrics": list(metric_names),
            "significance": {
                "tests": ["paired t-test", "paired randomization"],
                "seed": seed,
                "resamples": resamples,
            },
            **(settings or {}),
        },
        "systems": systems,
        "significance": significance,
        "per_query": per_query,
    }


# ------------------------------------------------------------------------------------- writers
def write_json(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the report as indented JSON (UTF-8)."""
    file = Path(path)
    file.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return file
