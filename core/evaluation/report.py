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
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prism_core.evaluation.datasets import EvalSet
from prism_core.evaluation.metrics import TESTED_METRICS, mean, paired_tests, per_query_metrics
from prism_core.evaluation.retrieval import Candidates
from prism_core.evaluation.systems import DocOutcome, QueryRun, SystemRun
from prism_core.extras import missing_extra

logger = logging.getLogger(__name__)

#: ``report["format"]``: bumped when the layout changes incompatibly.
REPORT_FORMAT = "prism-rerank-eval/1"
PLOT_FILE = "quality_vs_tokens.png"
MEANINGLESS_WARNING = (
    "TINY RANDOM-WEIGHT MODEL: {systems} {verb} a tiny locally built model with random weights. "
    "Its scores, verdicts, evidence, metrics and token savings are MEANINGLESS; the run only shows "
    "that the pipeline works end to end."
)


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (``numpy.percentile``'s default), ``q`` in [0, 100]."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(seconds: Sequence[float]) -> dict[str, float] | None:
    """Median, p90, mean and max of per-query latencies, in milliseconds (``None`` for none).

    Example:
        >>> latency_summary([0.1, 0.2, 0.3])["median_ms"]
        200.0
    """
    if not seconds:
        return None
    ms = [s * 1000.0 for s in seconds]
    return {
        "median_ms": round(statistics.median(ms), 3),
        "p90_ms": round(_percentile(ms, 90.0), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def _sum(values: Sequence[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _share(part: int | None, whole: int | None) -> float | None:
    if part is None or whole is None or whole == 0:
        return None
    return part / whole


def _returned(query: QueryRun, top_n: int) -> list[DocOutcome]:
    return query.returned if query.returned is not None else query.ranking[:top_n]


def _token_accounting(
    run: SystemRun, ranked: list[QueryRun], top_n: int, grounded_only: bool = True
) -> dict[str, Any]:
    returned = [d for q in ranked for d in _returned(q, top_n)]
    original = _sum([d.document_tokens for d in returned])
    out: dict[str, Any] = {
        "returned_documents": len(returned),
        "original_tokens": original,
        "original_tokens_per_document": _share(original, len(returned)),
        "original_tokens_per_query": _share(original, len(ranked)),
    }
    if not run.evidence:
        out["context_tokens"] = original
        out["context_tokens_per_query"] = _share(original, len(ranked))
        out["tokens_saved_share"] = 0.0 if original else None
        out["saved_by_evidence_share"] = 0.0 if original else None
        out["saved_by_dropping_share"] = 0.0 if original else None
        return out
    swapped = [
        d for d in returned if d.relevant and d.evidence_complete and (d.grounded or not grounded_only)
    ]
    kept_whole = [
        d for d in returned if d.relevant and not (d.evidence_complete and (d.grounded or not grounded_only))
    ]
    dropped = _sum([d.document_tokens for d in returned if not d.relevant])
    evidence = _sum([d.evidence_tokens for d in swapped])
    swapped_original = _sum([d.document_tokens for d in swapped])
    kept_original = _sum([d.document_tokens for d in kept_whole])
    context = None if evidence is None or kept_original is None else evidence + kept_original
    ratios = [
        d.evidence_tokens / d.document_tokens
        for d in swapped
        if d.evidence_tokens is not None and d.document_tokens
    ]
    out.update(
        {
            "evidence_tokens": evidence,
            "evidence_documents": len(swapped),
            "evidence_tokens_per_document": _share(evidence, len(swapped)),
            "swapped_original_tokens": swapped_original,
            "evidence_to_original": _share(evidence, swapped_original),
            "evidence_to_original_median": statistics.median(ratios) if ratios else None,
            "context_tokens": context,
            "context_tokens_per_query": _share(context, len(ranked)),
            "tokens_saved_share": None if context is None or not original else 1.0 - context / original,
            "saved_by_evidence_share": None
            if evidence is None or swapped_original is None or not original
            else (swapped_original - evidence) / original,
            "saved_by_dropping_share": None if dropped is None or not original else dropped / original,
        }
    )
    return out


def _grounding_accounting(ranked: list[QueryRun]) -> dict[str, Any]:
    """The grounding check over every generated evidence passage of the returned documents."""
    generated = [(q.query_id, d) for q in ranked for d in (q.returned or []) if d.evidence is not None]
    scores = [d.grounding for _, d in generated if d.grounding is not None]
    items = sum(len(d.unsupported or ()) for _, d in generated)
    grounded = sum(1 for _, d in generated if d.grounded)
    return {
        "evidence_generated": len(generated),
        "fully_grounded": grounded,
        "fully_grounded_share": _share(grounded, len(generated)),
        "mean_support": statistics.fmean(scores) if scores else None,
        "unsupported_items": items,
        "unsupported_per_100_passages": 100.0 * items / len(generated) if generated else None,
        "rejected_ungrounded": sum(
            1 for _, d in generated if d.relevant and d.evidence_complete and not d.grounded
        ),
        "unsupported_examples": [
            {"query_id": q, "doc_id": d.doc_id, "unsupported": list(d.unsupported or ())}
            for q, d in generated
            if d.unsupported
        ][:10],
    }


def _evidence_accounting(ranked: list[QueryRun], data: EvalSet) -> dict[str, Any]:
    returned = [(q.query_id, d) for q in ranked for d in (q.returned or [])]

    def label(query_id: str, doc_id: str) -> int:
        return data.qrels.get(query_id, {}).get(doc_id, 0)

    relevant = [d for _, d in returned if d.relevant]
    labelled = [d for q, d in returned if label(q, d.doc_id) > 0]
    labelled_complete = [d for d in labelled if d.relevant and d.evidence_complete]
    candidates_labelled = [d for q in ranked for d in q.ranking if label(q.query_id, d.doc_id) > 0]
    return {
        "returned_documents": len(returned),
        "judged_relevant": len(relevant),
        "with_complete_evidence": sum(1 for d in relevant if d.evidence_complete),
        "without_complete_evidence": sum(1 for d in relevant if not d.evidence_complete),
        "judged_irrelevant_dropped": len(returned) - len(relevant),
        "labelled_relevant_returned": len(labelled),
        "labelled_relevant_with_complete_evidence": len(labelled_complete),
        "labelled_relevant_complete_share": _share(len(labelled_complete), len(labelled)),
        "labelled_relevant_dropped": sum(1 for d in labelled if not d.relevant),
        "labelled_relevant_candidates": len(candidates_labelled),
        "labelled_relevant_candidates_judged_irrelevant": sum(
            1 for d in candidates_labelled if not d.relevant
        ),
    }


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


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _saved(tokens: dict[str, Any]) -> str:
    total = tokens.get("tokens_saved_share")
    if total is None:
        return "–"
    return (
        f"{_pct(total)} ({_pct(tokens.get('saved_by_evidence_share'))} + "
        f"{_pct(tokens.get('saved_by_dropping_share'))})"
    )


def _grounding_markdown(systems: dict[str, dict[str, Any]], grounded_only: bool) -> list[str]:
    header = [
        "System",
        "Evidence passages",
        "Fully grounded",
        "Mean support",
        "Unsupported / 100",
        "Not swapped",
    ]
    lines = [
        "",
        "## Grounding of the evidence",
        "",
        "Each generated evidence passage checked against its document (`prism_core.check_grounding`): "
        "fully grounded = every number, date, URL, e-mail address, code span, term and name in it is in "
        "the document; support = share of its content found in the document. "
        + (
            "Not swapped: complete evidence kept out by `grounded_only` (the original text is used)."
            if grounded_only
            else "grounded_only is off: ungrounded evidence was counted as swapped in."
        ),
        "",
        _row(header),
        _rule(len(header)),
    ]
    for name, s in systems.items():
        g = s["grounding"]
        lines.append(
            _row(
                [
                    name,
                    g["evidence_generated"],
                    f"{g['fully_grounded']} ({_pct(g['fully_grounded_share'])})",
                    _f(g["mean_support"]),
                    _f(g["unsupported_per_100_passages"], 1),
                    g["rejected_ungrounded"],
                ]
            )
        )
    judged = {n: s["judge"] for n, s in systems.items() if s.get("judge")}
    if judged:
        header = [
            "System",
            "Judged",
            "Judge: faithful",
            "Mean faithfulness",
            "Mean completeness",
            "Agreement with check",
            "Judge errors",
        ]
        lines += [
            "",
            "LLM judge (rubric in `prism_core.evaluation.judge`); agreement: share of judged passages where "
            "the judge's faithful/unfaithful verdict equals the check's grounded/ungrounded.",
            "",
            _row(header),
            _rule(len(header)),
        ]
        for name, j in judged.items():
            lines.append(
                _row(
                    [
                        name,
                        j["judged"],
                        f"{j['faithful']} ({_pct(j['faithful_share'])})",
                        _f(j["mean_faithfulness"], 2),
                        _f(j["mean_completeness"], 2),
                        _pct(j["agreement"]),
                        j["errors"],
                    ]
                )
            )
    return lines


def _metric_label(name: str) -> str:
    kind, _, cut = name.partition("@")
    return {"ndcg": "nDCG", "mrr": "MRR", "recall": "R"}[kind] + "@" + cut


def banner_lines(report: dict[str, Any]) -> list[str]:
    """The loud warning lines for a report that ran random-weight models (empty otherwise)."""
    if not report.get("meaningless"):
        return []
    return [w for w in report["warnings"] if w.startswith("TINY RANDOM-WEIGHT")]


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _rule(columns: int, left: int = 1) -> str:
    """A Markdown header rule: the first ``left`` columns left-aligned, the rest (numbers) right-aligned."""
    return "|" + "|".join(["---"] * left + ["---:"] * (columns - left)) + "|"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a summary table, evidence and token accounting, tests and counts.

    Example:
        >>> print(render_markdown(report).splitlines()[0])  # doctest: +SKIP
        # Reranking evaluation: builtin
    """
    ds, fs, st = report["dataset"], report["first_stage"], report["settings"]
    metrics = st["metrics"]
    lines = [f"# Reranking evaluation: {ds['name']}", ""]
    for warning in banner_lines(report):
        lines += [f"> **WARNING — {warning}**", ""]
    split = f", split `{ds['split']}`" if ds["split"] else ""
    lines += [
        f"Data: `{ds['source']}` ({ds['format']}{split}): {ds['queries_evaluated']} queries evaluated, "
        f"{ds['documents']:,} documents. First stage: **{fs['name']}**, "
        f"{fs['candidates_per_query']} candidates per query; {fs['relevant_retrieved']} of "
        f"{fs['relevant_judged']} relevant judgments retrieved. "
        f"Tokens: the {st['top_n']} documents returned per query.",
        "",
    ]
    header = ["System", *map(_metric_label, metrics), "Tokens/query", "Saved", "Latency p50/p90 ms", "Docs/s"]
    lines += [_row(header), _rule(len(header))]
    for name, s in report["systems"].items():
        label = f"{name} (first stage)" if s["kind"] == "first-stage" else name
        if s["meaningless"]:
            label += " ⚠ random weights"
        latency = s.get("latency")
        tokens = s["tokens"]
        lines.append(
            _row(
                [
                    label,
                    *[_f(s[m]) for m in metrics],
                    _n(tokens.get("context_tokens_per_query")),
                    _saved(tokens) if s["evidence"] else "–",
                    f"{latency['median_ms']:.0f} / {latency['p90_ms']:.0f}" if latency else "–",
                    _n(s.get("documents_per_second")),
                ]
            )
        )
    lines += [
        "",
        "Tokens/query: tokens of the returned documents that reach the LLM (after the evidence swap for "
        "evidence-generating systems). Saved: total (by evidence + by dropping documents judged "
        "irrelevant). Latency: per query, ranking pass plus evidence pass. "
        "Docs/s: documents scored per second in the ranking pass.",
    ]
    evidence_systems = {n: s for n, s in report["systems"].items() if s["evidence"]}
    if evidence_systems:
        header = [
            "System",
            "Returned",
            "Original tokens",
            "Evidence tokens",
            "Evidence/original",
            "Context tokens",
            "Saved by evidence",
            "Saved by dropping",
            "Relevant with complete evidence",
            "Relevant dropped (returned; candidates)",
        ]
        lines += [
            "",
            "## Evidence and tokens",
            "",
            "Returned documents judged relevant with complete evidence are replaced by their evidence; "
            "relevant ones without complete evidence keep their text; those judged irrelevant are dropped "
            "(the adapters' defaults). Relevant means labelled relevant (label > 0).",
            "",
            _row(header),
            _rule(len(header)),
        ]
        for name, s in evidence_systems.items():
            t, e = s["tokens"], s["evidence_stats"]
            complete = e["labelled_relevant_with_complete_evidence"]
            returned_relevant = e["labelled_relevant_returned"]
            lines.append(
                _row(
                    [
                        name,
                        e["returned_documents"],
                        _n(t["original_tokens"]),
                        f"{_n(t['evidence_tokens'])} ({e['with_complete_evidence']} docs)",
                        _pct(t["evidence_to_original"]),
                        _n(t["context_tokens"]),
                        _pct(t["saved_by_evidence_share"]),
                        _pct(t["saved_by_dropping_share"]),
                        f"{complete}/{returned_relevant} ({_pct(e['labelled_relevant_complete_share'])})",
                        f"{e['labelled_relevant_dropped']}/{returned_relevant}; "
                        f"{e['labelled_relevant_candidates_judged_irrelevant']}/{e['labelled_relevant_candidates']}",
                    ]
                )
            )
    if evidence_systems:
        lines += _grounding_markdown(evidence_systems, report["settings"].get("grounded_only", True))
    if report["significance"]:
        header = ["A", "B", "Metric", "Mean A", "Mean B", "A − B", "p (t-test)", "p (randomization)"]
        lines += [
            "",
            "## Paired significance tests (two-sided, per query)",
            "",
            _row(header),
            _rule(len(header), left=3),
        ]
        for t in report["significance"]:
            lines.append(
                _row(
                    [
                        t["a"],
                        t["b"],
                        _metric_label(t["metric"]),
                        _f(t["mean_a"]),
                        _f(t["mean_b"]),
                        _f(t["difference"]),
                        _f(t["p_t_test"], 4),
                        _f(t["p_randomization"], 4),
                    ]
                )
            )
        lines += ["", f"n = {ds['queries_evaluated']} queries; no correction for multiple comparisons."]
    lines += ["", "## Accounting", ""]
    lines.append(
        f"- Queries: {ds['queries_in_split']} in the split, {ds['queries_evaluated']} evaluated, "
        f"{len(ds['queries_without_relevant_judgments'])} without a relevant judgment (not evaluated), "
        f"{ds['queries_left_out_by_limit']} left out by --max-queries."
    )
    lines.append(
        f"- First stage: {fs['candidates_total']:,} candidates; "
        f"{fs['queries_with_fewer_candidates']} queries with fewer than {fs['candidates_per_query']}, "
        f"{len(fs['queries_without_candidates'])} with none; {fs['documents_retrieved']:,} distinct "
        f"documents retrieved, {fs['documents_never_retrieved']:,} never."
    )
    for name, s in report["systems"].items():
        q, d = s["queries"], s["documents"]
        lines.append(
            f"- {name}: {q['ranked']} queries ranked, {q['failed']} failed, "
            f"{q['without_candidates']} without candidates; {d['ranked']:,} documents ranked, "
            f"{d['in_failed_queries']} in failed queries, {d['returned']:,} returned, "
            f"{d['truncated']} truncated."
        )
        for failure in s["failures"][:5]:
            lines.append(f"  - failed {failure['query_id']}: {failure['error']}")
        if len(s["failures"]) > 5:
            lines.append(f"  - and {len(s['failures']) - 5} more failures (see report.json)")
    return "\n".join(lines) + "\n"


def write_markdown(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write :func:`render_markdown` to ``path``."""
    file = Path(path)
    file.write_text(render_markdown(report), encoding="utf-8")
    return file


def write_plot(report: dict[str, Any], path: str | os.PathLike[str], metric: str = "ndcg@10") -> Path:
    """Plot ``metric`` against context tokens per query, one point per system, as a PNG.

    Raises:
        ImportError: matplotlib is missing (the message says what to install).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise missing_extra("bench", needs="matplotlib", by="the plot", alternative="matplotlib") from exc
    file = Path(path)
    figure, axes = plt.subplots(figsize=(8, 4.8), dpi=120)
    xs = [s["tokens"].get("context_tokens_per_query") for s in report["systems"].values()]
    right = max([x for x in xs if x is not None], default=1.0) or 1.0
    try:
        for name, s in report["systems"].items():
            x = s["tokens"].get("context_tokens_per_query")
            if x is None:
                continue
            marker = "s" if s["kind"] == "first-stage" else ("o" if s["evidence"] else "^")
            axes.scatter([x], [s[metric]], marker=marker, s=60)
            axes.annotate(name, (x, s[metric]), textcoords="offset points", xytext=(6, 4), fontsize=8)
        axes.set_xlabel(f"context tokens per query (top {report['settings']['top_n']} returned)")
        axes.set_ylabel(_metric_label(metric))
        title = f"{report['dataset']['name']}: quality against tokens kept"
        if report.get("meaningless"):
            title += "\nRANDOM-WEIGHT MODEL: MEANINGLESS NUMBERS"
        axes.set_title(title, fontsize=10, color="red" if report.get("meaningless") else "black")
        axes.set_xlim(0, right * 1.45)
        axes.text(
            0.01,
            0.02,
            "■ first stage   ● evidence swap   ▲ rerank only",
            transform=axes.transAxes,
            fontsize=7,
        )
        axes.set_ylim(0, 1.02)
        axes.grid(True, alpha=0.3)
        figure.tight_layout()
        figure.savefig(file)
    finally:
        plt.close(figure)
    return file
