"""Metrics on toy runs: the library's numbers, checked against hand computation and a direct library call."""

from __future__ import annotations

import itertools
import math
import statistics

import ir_measures
import pytest
from scipy import stats

from prism_core.evaluation.metrics import mean, measure_of, metric_names, paired_tests, per_query_metrics

QRELS = {
    "q1": {"a": 2, "b": 1, "c": 0, "d": 1},
    "q2": {"e": 1},
    "q3": {"h": 2},
}
RUN = {
    "q1": ["c", "a", "x", "b"],  # x is unjudged
    "q2": ["f", "g"],
    "q3": [],  # nothing ranked: every metric 0
}
NAMES = ["ndcg@10", "mrr@10", "recall@3", "recall@10"]


def test_hand_computed_values() -> None:
    values = per_query_metrics(QRELS, RUN, ["q1", "q2", "q3"], NAMES)
    # q1: gains by rank 0, 2, 0, 1 -> DCG = 2/log2(3) + 1/log2(5); ideal gains 2, 1, 1.
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert values["ndcg@10"]["q1"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert values["mrr@10"]["q1"] == pytest.approx(1 / 2)
    assert values["recall@3"]["q1"] == pytest.approx(1 / 3)  # a of {a, b, d}
    assert values["recall@10"]["q1"] == pytest.approx(2 / 3)  # a, b
    for name in NAMES:
        assert values[name]["q2"] == 0.0
        assert values[name]["q3"] == 0.0
    assert mean(values["ndcg@10"]) == pytest.approx(dcg / idcg / 3, abs=1e-12)
    assert mean(values["mrr@10"]) == pytest.approx(0.5 / 3)


def test_equal_to_a_direct_library_call() -> None:
    values = per_query_metrics(QRELS, RUN, ["q1", "q2"], NAMES)
    run = {q: {d: 10.0 - i for i, d in enumerate(docs)} for q, docs in RUN.items() if docs}
    qrels = {q: QRELS[q] for q in ("q1", "q2")}
    direct = ir_measures.calc_aggregate([measure_of(n) for n in NAMES], qrels, run)
    for name in NAMES:
        assert mean(values[name]) == pytest.approx(direct[measure_of(name)], abs=1e-12)


def test_order_is_the_systems_order_not_trec_evals_tie_break() -> None:
    # trec_eval breaks score ties by document id; positions decide here, so "b" stays second.
    values = per_query_metrics({"q": {"b": 1}}, {"q": ["a", "b"]}, ["q"], ["mrr@10"])
    assert values["mrr@10"]["q"] == 0.5


def test_cutoffs_are_respected() -> None:
    ranking = [f"n{i}" for i in range(10)] + ["rel"]  # the relevant document is 11th
    values = per_query_metrics({"q": {"rel": 1}}, {"q": ranking}, ["q"], ["ndcg@10", "mrr@10", "recall@11"])
    assert values["ndcg@10"]["q"] == 0.0
    assert values["mrr@10"]["q"] == 0.0
    assert values["recall@11"]["q"] == 1.0


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="'q9' has no judgments"):
        per_query_metrics(QRELS, RUN, ["q9"], NAMES)
    with pytest.raises(ValueError, match="repeats a document"):
        per_query_metrics(QRELS, {"q1": ["a", "a"]}, ["q1"], NAMES)
    with pytest.raises(ValueError, match="unknown metric 'map@10'"):
        measure_of("map@10")


def test_metric_names() -> None:
    assert metric_names(30) == ["ndcg@10", "mrr@10", "recall@10", "recall@30"]
    assert metric_names(10) == ["ndcg@10", "mrr@10", "recall@10"]


def test_paired_tests_against_hand_computation() -> None:
    a = {"q1": 0.5, "q2": 0.8, "q3": 0.3, "q4": 0.9}
    b = {"q1": 0.4, "q2": 0.2, "q3": 0.3, "q4": 0.6}
    result = paired_tests(a, b, seed=1, resamples=10000)
    d = [a[q] - b[q] for q in a]
    n = len(d)
    t = statistics.fmean(d) / (statistics.stdev(d) / math.sqrt(n))
    assert result["p_t_test"] == pytest.approx(2 * stats.t.sf(abs(t), n - 1), rel=1e-9)
    # Exact randomisation test: all 2**4 sign flips, two-sided.
    observed = abs(statistics.fmean(d))
    flips = [
        abs(statistics.fmean([s * x for s, x in zip(signs, d, strict=True)]))
        for signs in itertools.product((1, -1), repeat=n)
    ]
    expected = sum(1 for f in flips if f >= observed - 1e-12) / len(flips)
    assert result["p_randomization"] == pytest.approx(expected)
    assert result["n"] == 4
    assert result["difference"] == pytest.approx(statistics.fmean(d))
    assert result["mean_a"] == pytest.approx(statistics.fmean(a.values()))


def test_paired_tests_degenerate_cases() -> None:
    same = {"q1": 0.2, "q2": 0.7}
    assert paired_tests(same, same)["p_t_test"] == 1.0
    assert paired_tests(same, same)["p_randomization"] == 1.0
    one = paired_tests({"q1": 1.0}, {"q1": 0.0})
    assert one["p_t_test"] is None and one["p_randomization"] is None and one["n"] == 1
