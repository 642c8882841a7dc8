"""Metrics from ``ir-measures`` (trec_eval through ``pytrec_eval``) and paired significance tests (SciPy).

Nothing here computes a metric by hand: nDCG@k, MRR@k (``RR@k``) and Recall@k come from
``ir_measures.iter_calc``; the paired t-test is ``scipy.stats.ttest_rel`` and the paired
randomisation (sign-flip permutation) test is ``scipy.stats.permutation_test``.

Two conventions make the numbers mean what the report says:

- **The evaluated order is the system's order.** trec_eval sorts a run by score and breaks ties
  by document id, which would reorder tied documents (a random-weight model gives many ties, and a
  first stage may too). Each ranking is therefore passed with strictly decreasing scores
  ``n, n-1, ..., 1`` derived from its positions.
- **Every evaluated query counts.** trec_eval leaves out a query that has no ranked document;
  here such a query scores 0 on every metric (a system that returns nothing for a query has
  failed it), so every system is averaged over the same queries.

Example:
    >>> qrels = {"q1": {"a": 2, "b": 0, "c": 1}}
    >>> per_query = per_query_metrics(qrels, {"q1": ["b", "a", "c"]}, ["q1"], ["mrr@10", "recall@2"])
    >>> per_query["mrr@10"]["q1"], per_query["recall@2"]["q1"]
    (0.5, 0.5)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from prism_core.evaluation.retrieval import require

_NAME = re.compile(r"^(ndcg|mrr|recall)@([1-9][0-9]*)$")
_MEASURES = {"ndcg": "nDCG", "mrr": "RR", "recall": "R"}

#: The metrics the significance tests compare (the report's headline metrics).
TESTED_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10")


def metric_names(candidates: int, cutoff: int = 10) -> list[str]:
    """The report's metrics: ``ndcg@c``, ``mrr@c``, ``recall@c`` and ``recall@<candidates>``.

    Example:
        >>> metric_names(30)
        ['ndcg@10', 'mrr@10', 'recall@10', 'recall@30']
        >>> metric_names(10)
        ['ndcg@10', 'mrr@10', 'recall@10']
    """
    names = [f"ndcg@{cutoff}", f"mrr@{cutoff}", f"recall@{cutoff}"]
    if candidates != cutoff:
        names.append(f"recall@{candidates}")
    return names


def measure_of(name: str) -> Any:
    """The ``ir_measures`` measure for a report name (``ndcg@10`` → ``nDCG@10``, ``mrr@10`` → ``RR@10``,
    ``recall@30`` → ``R@30``).

    Raises:
        ValueError: An unknown name.
    """
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"unknown metric {name!r}; known: ndcg@K, mrr@K, recall@K")
    ir_measures = require("ir_measures", "Evaluation metrics")
    return ir_measures.parse_measure(f"{_MEASURES[match.group(1)]}@{match.group(2)}")


def per_query_metrics(
    qrels: Mapping[str, Mapping[str, int]],
    rankings: Mapping[str, Sequence[str]],
    query_ids: Sequence[str],
    names: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Each metric for each query of ``query_ids``, computed by ``ir_measures``.

    Args:
        qrels: Query id → {document id → graded label}.
        rankings: Query id → document ids, best first (a missing or empty ranking scores 0).
        query_ids: The evaluated queries (each must have a judgment in ``qrels``).
        names: Report metric names (see :func:`metric_names`).

    Returns:
        Metric name → {query id → value}, every query of ``query_ids`` present.

    Raises:
        ValueError: A query of ``query_ids`` without judgments, or a ranking that repeats a document.
    """
    ir_measures = require("ir_measures", "Evaluation metrics")
    measures = {measure_of(n): n for n in names}
    judged: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for query_id in query_ids:
        if query_id not in qrels:
            raise ValueError(f"query {query_id!r} has no judgments")
        judged[query_id] = {d: int(label) for d, label in qrels[query_id].items()}
        ranking = list(rankings.get(query_id, ()))
        if len(set(ranking)) != len(ranking):
            raise ValueError(f"the ranking of query {query_id!r} repeats a document")
        if ranking:
            run[query_id] = {doc_id: float(len(ranking) - i) for i, doc_id in enumerate(ranking)}
    out: dict[str, dict[str, float]] = {n: dict.fromkeys(query_ids, 0.0) for n in names}
    if run:
        for metric in ir_measures.iter_calc(list(measures), judged, run):
            out[measures[metric.measure]][metric.query_id] = float(metric.value)
    return out


def mean(values: Mapping[str, float]) -> float:
    """The arithmetic mean of per-query values (0.0 for none)."""
    return math.fsum(values.values()) / len(values) if values else 0.0


def paired_tests(
    a: Mapping[str, float], b: Mapping[str, float], *, seed: int = 0, resamples: int = 10000
) -> dict[str, Any]:
    """Paired significance tests of ``a`` against ``b`` over their common queries.

    Args:
        a: Query id → metric value of the first system.
        b: Query id → metric value of the second system.
        seed: Seed of the randomisation test (results are reproducible).
        resamples: Random sign flips of the randomisation test (exact when ``2**n`` is smaller).

    Returns:
        ``n`` (queries), ``mean_a``, ``mean_b``, ``difference`` (``mean_a - mean_b``),
        ``p_t_test`` (two-sided paired t-test) and ``p_randomization`` (two-sided paired
        randomisation test); the p-values are ``None`` with fewer than 2 queries and 1.0 when every
        difference is zero.

    Example:
        >>> r = paired_tests({"q1": 1.0, "q2": 0.5}, {"q1": 1.0, "q2": 0.5})
        >>> r["p_t_test"], r["p_randomization"]
        (1.0, 1.0)
    """
    import numpy as np

    stats = require("scipy.stats", "Significance tests")
    common = [q for q in a if q in b]
    x = np.array([a[q] for q in common], dtype=np.float64)
    y = np.array([b[q] for q in common], dtype=np.float64)
    out: dict[str, Any] = {
        "n": len(common),
        "mean_a": float(x.mean()) if len(common) else 0.0,
        "mean_b": float(y.mean()) if len(common) else 0.0,
        "difference": float((x - y).mean()) if len(common) else 0.0,
        "p_t_test": None,
        "p_randomization": None,
    }
    if len(common) < 2:
        return out
    if np.all(x == y):
        out["p_t_test"] = out["p_randomization"] = 1.0
        return out
    t_p = float(stats.ttest_rel(x, y).pvalue)
    out["p_t_test"] = t_p if math.isfinite(t_p) else 1.0

    def mean_difference(u: Any, v: Any, axis: int) -> Any:
        return np.mean(u - v, axis=axis)

    result = stats.permutation_test(
        (x, y),
        mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=resamples,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    out["p_randomization"] = float(min(1.0, result.pvalue))
    return out
