"""The report's per-system accounting: latency percentiles, tokens, grounding and evidence counts.

See :mod:`prism_core.evaluation.report` for what each token figure means.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from prism_core.evaluation.datasets import EvalSet
from prism_core.evaluation.systems import DocOutcome, QueryRun, SystemRun


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
