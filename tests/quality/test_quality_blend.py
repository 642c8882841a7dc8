"""The framework-free quality rules: normalisation, blend, filter, threshold, top-n, and which
documents get scored. Pure functions: no model."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from prism_core.quality import (
    QualityOutcome,
    aapply_quality,
    apply_quality,
    blend,
    check_min_quality,
    check_quality_weight,
    engine_cuts,
    finish_quality,
    normalize_quality,
    plan_quality,
    select_by_quality,
)


class Oracle:
    """Raw quality per index; records what it was asked."""

    def __init__(self, raw: dict[int, float]) -> None:
        self.raw = raw
        self.calls: list[list[int]] = []

    def __call__(self, indices: list[int]) -> list[float]:
        self.calls.append(list(indices))
        return [self.raw[i] for i in indices]


def brute_force(
    ranked: Sequence[tuple[int, float]],
    raw: dict[int, float],
    *,
    returnable: set[int] | None = None,
    min_quality: float | None = None,
    w: float = 0.0,
    threshold: float | None = None,
    top_n: int | None = None,
) -> list[tuple[int, float]]:
    """The documented rules, written out naively, scoring every document."""
    rows = [(i, r) for i, r in ranked if returnable is None or i in returnable]
    rows = [(i, r) for i, r in rows if min_quality is None or raw[i] >= min_quality]
    scored = [(i, (1 - w) * r + w * min(max(raw[i] / 5, 0), 1) if w else r) for i, r in rows]
    scored = [(i, s) for i, s in scored if threshold is None or s >= threshold]
    scored.sort(key=lambda x: -x[1])
    return scored[:top_n] if top_n is not None else scored


def _accounted(out: QualityOutcome, n: int) -> None:
    lists = [
        [d.index for d in out.kept], out.dropped_low_quality, out.dropped_by_threshold,
        out.dropped_by_top_n, out.dropped_not_returnable,
    ]  # fmt: skip
    flat = [i for part in lists for i in part]
    assert sorted(flat) == list(range(n)), f"documents lost or doubled: {lists}"


# --- scalar rules ----------------------------------------------------------------------------------


def test_normalize_quality() -> None:
    assert [normalize_quality(x) for x in (-1.0, 0.0, 2.5, 5.0, 7.3)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    with pytest.raises(ValueError, match="finite"):
        normalize_quality(float("nan"))


def test_blend_formula() -> None:
    assert blend(0.8, 2.5, 0.2) == pytest.approx(0.8 * 0.8 + 0.2 * 0.5)
    assert blend(0.8, 9.0, 1.0) == 1.0
    assert blend(0.123456789, 4.0, 0.0) == 0.123456789  # w = 0: exactly the relevance


@pytest.mark.parametrize(
    ("check", "value", "error", "message"),
    [
        (check_min_quality, 5.5, ValueError, r"min_quality must be in \[0, 5\]"),
        (check_min_quality, -0.1, ValueError, r"min_quality must be in \[0, 5\]"),
        (check_min_quality, True, TypeError, "min_quality must be a number"),
        (check_min_quality, "2", TypeError, "min_quality must be a number"),
        (check_quality_weight, 1.5, ValueError, r"quality_weight must be in \[0, 1\]"),
        (check_quality_weight, float("nan"), ValueError, "quality_weight"),
        (check_quality_weight, "0.5", TypeError, "quality_weight must be a number"),
    ],
)
def test_option_checks(check: Any, value: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        check(value)


def test_option_checks_accept_numpy_and_none() -> None:
    assert check_min_quality(np.float32(2.5)) == 2.5 and check_min_quality(None) is None
    assert check_quality_weight(np.float64(0.25)) == 0.25 and check_quality_weight(None) == 0.0


# --- the order of the rules ------------------------------------------------------------------------

RANKED = [(0, 0.95), (1, 0.9), (2, 0.7), (3, 0.6), (4, 0.3)]
RAW = {0: 0.5, 1: 4.5, 2: 3.0, 3: 5.0, 4: 4.0}


def test_annotate_only_keeps_relevance_order_and_scores() -> None:
    oracle = Oracle(RAW)
    out = apply_quality(RANKED, oracle)
    assert [(d.index, d.score) for d in out.kept] == RANKED
    assert [d.relevance for d in out.kept] == [r for _, r in RANKED]
    assert [d.quality for d in out.kept] == [RAW[i] for i, _ in RANKED]
    assert [d.quality_normalized for d in out.kept] == [0.1, 0.9, 0.6, 1.0, 0.8]
    assert oracle.calls == [[0, 1, 2, 3, 4]]


def test_filter_comes_before_top_n() -> None:
    """min_quality drops 0 first, so top_n=2 returns the next two (not just 1)."""
    out = apply_quality(RANKED, Oracle(RAW), min_quality=1.0, top_n=2)
    assert [d.index for d in out.kept] == [1, 2]
    assert out.dropped_low_quality == [0] and out.dropped_by_top_n == [3, 4]
    _accounted(out, 5)


def test_blend_reorders_then_threshold_on_blended_then_top_n() -> None:
    out = apply_quality(RANKED, Oracle(RAW), quality_weight=0.5, score_threshold=0.7, top_n=2)
    blended = {i: 0.5 * r + 0.5 * min(RAW[i] / 5, 1) for i, r in RANKED}
    # blended: 0 → 0.525, 1 → 0.9, 2 → 0.65, 3 → 0.8, 4 → 0.55
    assert [d.index for d in out.kept] == [1, 3]
    assert [d.score for d in out.kept] == [blended[1], blended[3]]
    assert [d.relevance for d in out.kept] == [0.9, 0.6]  # the raw relevance is kept
    assert sorted(out.dropped_by_threshold) == [0, 2, 4]
    _accounted(out, 5)


def test_boundaries_are_inclusive() -> None:
    out = apply_quality([(0, 0.5), (1, 0.4)], Oracle({0: 2.0, 1: 2.0}), min_quality=2.0, score_threshold=0.5)
    assert [d.index for d in out.kept] == [0] and out.dropped_by_threshold == [1]


def test_ties_keep_input_order() -> None:
    out = apply_quality([(5, 0.5), (3, 0.5), (9, 0.5)], Oracle({5: 1.0, 3: 1.0, 9: 1.0}), quality_weight=0.3)
    assert [d.index for d in out.kept] == [5, 3, 9]


def test_not_returnable_are_never_scored_and_take_no_slot() -> None:
    oracle = Oracle(RAW)
    out = apply_quality(RANKED, oracle, returnable={1, 3, 4}, top_n=2)
    assert [d.index for d in out.kept] == [1, 3]
    assert out.dropped_not_returnable == [0, 2]
    assert all(0 not in call and 2 not in call for call in oracle.calls)
    _accounted(out, 5)


# --- quality only for documents that can still be returned -----------------------------------------


def test_annotate_only_with_top_n_scores_only_the_top() -> None:
    oracle = Oracle(RAW)
    out = apply_quality(RANKED, oracle, top_n=2)
    assert oracle.calls == [[0, 1]]
    assert [d.index for d in out.kept] == [0, 1] and out.dropped_by_top_n == [2, 3, 4]


def test_threshold_prunes_what_cannot_reach_it() -> None:
    oracle = Oracle(RAW)
    # w = 0.5: best possible blended = 0.5 r + 0.5 → 4 (r = 0.3) can reach 0.65 at most.
    out = apply_quality(RANKED, oracle, quality_weight=0.5, score_threshold=0.7)
    assert oracle.calls == [[0, 1, 2, 3]]
    assert 4 in out.dropped_by_threshold
    _accounted(out, 5)


def test_top_n_prunes_with_bounds_when_no_filter() -> None:
    ranked = [(0, 0.99), (1, 0.98), (2, 0.97), (3, 0.1), (4, 0.05)]
    oracle = Oracle({0: 0.0, 1: 0.0, 2: 5.0, 3: 5.0, 4: 5.0})
    out = apply_quality(ranked, oracle, quality_weight=0.2, top_n=2)
    # the two worst-case scores 0.8·0.99, 0.8·0.98 beat the best case of 3 and 4 (0.8·0.1 + 0.2)
    assert oracle.calls == [[0, 1, 2]]
    assert [d.index for d in out.kept] == [2, 0]
    _accounted(out, 5)


def test_min_quality_disables_top_n_pruning() -> None:
    oracle = Oracle(RAW)
    apply_quality(RANKED, oracle, min_quality=1.0, top_n=1)
    assert oracle.calls == [[0, 1, 2, 3, 4]]


def test_nothing_to_score_calls_nothing() -> None:
    def never(indices: list[int]) -> list[float]:
        raise AssertionError("quality should not be computed")

    out = apply_quality(RANKED, never, quality_weight=0.5, score_threshold=0.99)
    assert out.kept == [] and sorted(out.dropped_by_threshold) == [0, 1, 2, 3, 4]
    assert apply_quality([], never).kept == []


@pytest.mark.parametrize("seed", range(6))
def test_pruning_never_changes_the_outcome(seed: int) -> None:
    """Randomised: the outcome equals the brute-force rules, and every document is accounted for."""
    rng = random.Random(seed)
    for _ in range(300):
        n = rng.randint(0, 9)
        ranked = [
            (i, rng.choice([0.0, 0.1, 0.5, 0.5, 0.9, 1.0, rng.random()])) for i in rng.sample(range(20), n)
        ]
        ranked.sort(key=lambda x: -x[1])
        raw = {i: rng.choice([-0.5, 0.0, 2.5, 2.5, 5.0, 6.0, rng.uniform(0, 5)]) for i, _ in ranked}
        options: dict[str, Any] = {
            "returnable": rng.choice([None, {i for i, _ in ranked if rng.random() < 0.7}]),
            "min_quality": rng.choice([None, None, 0.0, 2.5, rng.uniform(0, 5)]),
            "quality_weight": rng.choice([0.0, 0.0, 1.0, 0.5, rng.random()]),
            "score_threshold": rng.choice([None, None, 0.5, rng.random()]),
            "top_n": rng.choice([None, 1, 2, 3, 5]),
        }
        oracle = Oracle(raw)
        out = apply_quality(ranked, oracle, **options)
        expected = brute_force(
            ranked, raw, returnable=options["returnable"], min_quality=options["min_quality"],
            w=options["quality_weight"], threshold=options["score_threshold"], top_n=options["top_n"],
        )  # fmt: skip
        assert [(d.index, d.score) for d in out.kept] == [
            (i, pytest.approx(s, abs=1e-12)) for i, s in expected
        ]
        assert len(oracle.calls) <= 1
        assert {d.index for d in out.kept} <= set(out.quality)
        every = [d.index for d in out.kept] + out.dropped_low_quality + out.dropped_by_threshold
        every += out.dropped_by_top_n + out.dropped_not_returnable
        assert sorted(every) == sorted(i for i, _ in ranked)


@pytest.mark.parametrize("seed", range(4))
def test_engine_cuts_are_safe(seed: int) -> None:
    """Letting the reranker apply engine_cuts first never changes what apply_quality returns."""
    rng = random.Random(100 + seed)
    for _ in range(300):
        ranked = sorted(((i, rng.random()) for i in range(rng.randint(0, 8))), key=lambda x: -x[1])
        raw = {i: rng.uniform(-0.5, 5.5) for i, _ in ranked}
        rules: dict[str, Any] = {
            "min_quality": rng.choice([None, rng.uniform(0, 5)]),
            "quality_weight": rng.choice([0.0, 1.0, rng.random()]),
            "top_n": rng.choice([None, 1, 3]),
            "score_threshold": rng.choice([None, rng.random()]),
        }
        engine_top_n, engine_threshold = engine_cuts(**rules)
        cut = [(i, r) for i, r in ranked if engine_threshold is None or r >= engine_threshold]
        cut = cut[:engine_top_n] if engine_top_n is not None else cut
        full = apply_quality(ranked, Oracle(raw), **rules)
        after_engine = apply_quality(cut, Oracle(raw), **rules)
        assert [d.index for d in after_engine.kept] == [d.index for d in full.kept]


def test_engine_cuts_values() -> None:
    assert engine_cuts(min_quality=None, quality_weight=0.0, top_n=3, score_threshold=0.5) == (3, 0.5)
    assert engine_cuts(min_quality=1.0, quality_weight=0.0, top_n=3, score_threshold=0.5) == (None, 0.5)
    top_n, threshold = engine_cuts(min_quality=None, quality_weight=0.5, top_n=3, score_threshold=0.75)
    assert top_n is None and threshold == pytest.approx(0.5)
    assert engine_cuts(min_quality=None, quality_weight=0.5, top_n=None, score_threshold=0.4) == (None, None)
    assert engine_cuts(min_quality=None, quality_weight=1.0, top_n=None, score_threshold=0.9) == (None, None)


# --- plumbing --------------------------------------------------------------------------------------


def test_async_twin_gives_the_same_outcome() -> None:
    async def aquality(indices: list[int]) -> list[float]:
        await asyncio.sleep(0)
        return [RAW[i] for i in indices]

    options: dict[str, Any] = {"quality_weight": 0.4, "min_quality": 1.0, "top_n": 3}
    expected = apply_quality(RANKED, Oracle(RAW), **options)
    assert asyncio.run(aapply_quality(RANKED, aquality, **options)) == expected


@pytest.mark.parametrize(
    ("ranked", "error", "message"),
    [
        ([(0, 0.5), (0, 0.4)], ValueError, r"ranked\[1\] repeats index 0"),
        ([(0, float("nan"))], ValueError, r"ranked\[0\] relevance"),
        ([(-1, 0.5)], ValueError, r"ranked\[0\] index must be >= 0"),
        ([(0, "0.5")], TypeError, r"ranked\[0\] relevance must be a number"),
        ([(0,)], TypeError, r"ranked\[0\] must be an \(index, relevance\) pair"),
        ("ab", TypeError, "ranked must be a sequence"),
    ],
)
def test_ranked_validation(ranked: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        apply_quality(ranked, Oracle({}))


def test_option_validation_in_apply() -> None:
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        apply_quality(RANKED, Oracle(RAW), top_n=0)
    with pytest.raises(ValueError, match="score_threshold"):
        apply_quality(RANKED, Oracle(RAW), score_threshold=1.5)
    with pytest.raises(ValueError, match="quality_weight"):
        apply_quality(RANKED, Oracle(RAW), quality_weight=-0.1)


def test_bad_quality_scores_are_refused() -> None:
    plan = plan_quality(RANKED)
    with pytest.raises(ValueError, match="expected 5 quality scores, got 4"):
        finish_quality(plan, [1.0] * 4)
    with pytest.raises(ValueError, match="quality score of document 2"):
        finish_quality(plan, [1.0, 1.0, float("inf"), 1.0, 1.0])


def test_select_by_quality() -> None:
    assert select_by_quality([1.0, 3.0, 2.0, 3.0]) == ([0, 1, 2, 3], [])
    assert select_by_quality([1.0, 3.0, 2.0, 3.0], sort_by_quality=True) == ([1, 3, 2, 0], [])
    assert select_by_quality([1.0, 3.0, 2.0], min_quality=2.0) == ([1, 2], [0])
    with pytest.raises(ValueError, match="min_quality"):
        select_by_quality([1.0], min_quality=6)
