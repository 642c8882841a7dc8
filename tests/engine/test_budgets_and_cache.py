"""The result cache and the time budget on the real engine (tiny random-weight models, CPU).

Cache: a cached answer equals the computed one and touches no model; overlapping candidate lists
give what a cold call gives; another configuration, instruction or query never hits; two callers
asking the same pairs at once compute them once. Time budget: the call returns by its deadline plus
one engine step, with what is done, flagged; the engine stops spending on the request.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from prism_core import PrismReranker, Qwen3Reranker
from prism_core.budgets import TIME_BUDGET
from prism_core.caching.pair_cache import ResultCache, configure_result_cache, result_cache
from prism_core.results import PrismResult
from tests._slow import slowed_passes

QUERY = "what is rust?"
DOCS = [
    "Rust is a systems programming language focused on memory safety without garbage collection.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "def add(a, b):\n    return a + b\n",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "Bananas are berries, botanically speaking, while strawberries are not.",
]


@pytest.fixture
def cache() -> Iterator[ResultCache]:
    """The process-wide cache turned on (empty) for one test, then off again (the suite's default)."""
    previous = result_cache()
    try:
        yield configure_result_cache()
    finally:
        configure_result_cache(previous.max_entries, previous.max_bytes)


@pytest.fixture(scope="module")
def prism(tiny_qwen35_path: str) -> PrismReranker:
    return PrismReranker(tiny_qwen35_path, device="cpu", max_new_tokens=24).load()


def same(a: list[PrismResult], b: list[PrismResult]) -> None:
    assert [r.index for r in a] == [r.index for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.score == pytest.approx(y.score, abs=1e-5)
        assert (x.raw_output, x.evidence, x.evidence_complete, x.document_tokens) == (
            y.raw_output,
            y.evidence,
            y.evidence_complete,
            y.document_tokens,
        )


def test_cached_answer_equals_computed_without_touching_the_model(
    prism: PrismReranker, cache: ResultCache
) -> None:
    first = prism.rerank(QUERY, DOCS)
    assert any(r.raw_output for r in first), "no document was relevant: the test would prove little"
    stats = prism.engine_loop.stats
    passes, steps = stats.passes, stats.decode_steps
    again = prism.rerank(QUERY, DOCS)
    assert again == first  # exact: the stored values, field for field
    assert (stats.passes, stats.decode_steps) == (passes, steps), "a full hit ran the model"
    assert prism.score(QUERY, DOCS) == [r.score for r in sorted(first, key=lambda r: r.index)]
    assert prism.cache_stats["hits"] == 2 * len(DOCS) and prism.cache_stats["misses"] == len(DOCS)


def test_overlapping_candidates_give_what_a_cold_call_gives(prism: PrismReranker, cache: ResultCache) -> None:
    prism.rerank(QUERY, DOCS[:4], evidence=False)  # scores only: generation still to be done later
    mixed = ["Rust's borrow checker enforces ownership at compile time.", *DOCS[2:], DOCS[0]]
    for options in ({}, {"top_n": 2}, {"score_threshold": 0.3}, {"evidence": False}):
        warm = prism.rerank(QUERY, mixed, **options)
        configure_result_cache(max_entries=0)
        cold = prism.rerank(QUERY, mixed, **options)
        configure_result_cache()
        prism.rerank(QUERY, DOCS[:4], evidence=False)
        same(warm, cold)


def test_another_configuration_instruction_or_query_never_hits(
    prism: PrismReranker, tiny_qwen35_path: str, tiny_qwen3_path: str, cache: ResultCache
) -> None:
    prism.rerank(QUERY, DOCS[:2], evidence=False)
    assert prism.cache_stats["misses"] == 2
    prism.rerank("what is paris?", DOCS[:2], evidence=False)
    assert prism.cache_stats["hits"] == 0
    other = PrismReranker(tiny_qwen35_path, device="cpu", max_new_tokens=25)
    other.rerank(QUERY, DOCS[:2], evidence=False)
    assert other.cache_stats == {**other.cache_stats, "hits": 0, "misses": 2}
    a = Qwen3Reranker(tiny_qwen3_path, device="cpu", instruction="Find passages about programming")
    b = Qwen3Reranker(tiny_qwen3_path, device="cpu", instruction="Find passages about food")
    scores_a = a.score(QUERY, DOCS[:3])
    assert b.score(QUERY, DOCS[:3]) != scores_a  # computed, not served from a's entries
    assert b.cache_stats["hits"] == 0 and b.cache_stats["misses"] == 3
    assert a.score(QUERY, DOCS[:3]) == scores_a and a.cache_stats["hits"] == 3


def test_two_callers_asking_the_same_pairs_at_once_compute_them_once(
    prism: PrismReranker, cache: ResultCache
) -> None:
    out: dict[str, list[PrismResult]] = {}
    passes = prism.engine_loop.stats.passes
    prism.rerank(QUERY, DOCS)
    alone = prism.engine_loop.stats.passes - passes  # the passes one caller's work takes
    cache.clear()
    before = copy.copy(cache.stats)
    with slowed_passes(prism, 0.05) as slowed:
        passes = prism.engine_loop.stats.passes
        first = threading.Thread(target=lambda: out.setdefault("a", prism.rerank(QUERY, DOCS)))
        first.start()
        deadline = time.monotonic() + 30
        while not cache._inflight and time.monotonic() < deadline:  # the first caller's claim
            time.sleep(0.001)
        second = threading.Thread(target=lambda: out.setdefault("b", prism.rerank(QUERY, DOCS)))
        second.start()
        first.join(120)
        second.join(120)
    assert slowed, "the slowing hook never fired"
    assert out["a"] == out["b"]
    after = cache.stats
    assert after.misses - before.misses == len(DOCS) and after.hits - before.hits == len(DOCS)
    assert after.waits - before.waits == len(DOCS)
    assert prism.engine_loop.stats.passes - passes == alone, "the second caller ran passes of its own"


def test_time_budget_past_before_any_pass_returns_input_order_unscored(prism: PrismReranker) -> None:
    out = prism.rerank(QUERY, DOCS, time_budget=1e-9)  # past by the engine's first step
    assert [r.index for r in out] == list(range(len(DOCS)))
    assert not any(r.scored for r in out) and not any(r.relevant for r in out)
    assert all(r.score == 0.0 and r.evidence is None for r in out)
    assert prism.engine_loop.queue_depth == 0


def test_time_budget_mid_scoring_ranks_what_was_scored_then_the_rest(tiny_qwen35_path: str) -> None:
    one_per_pass = PrismReranker(tiny_qwen35_path, device="cpu", max_new_tokens=24, batch_tokens=1)
    one_per_pass.load()
    step = 0.3
    budget = 1.5 * step  # the query prefix's pass, then one document's, then the budget is past
    with slowed_passes(one_per_pass, step):
        start = time.monotonic()
        out = one_per_pass.rerank(QUERY, DOCS, time_budget=budget)
        elapsed = time.monotonic() - start
    assert elapsed < budget + 2 * step + 0.5, f"returned {elapsed:.2f} s after a {budget} s budget"
    scored = [r for r in out if r.scored]
    unscored = [r for r in out if not r.scored]
    assert scored and unscored, [r.scored for r in out]
    assert out[: len(scored)] == scored, "unscored documents were ranked among scored ones"
    assert [r.index for r in unscored] == sorted(r.index for r in unscored)
    assert {r.index for r in out} == set(range(len(DOCS)))
    assert one_per_pass.engine_loop.queue_depth == 0


def test_time_budget_keeps_scores_and_flags_unfinished_evidence(
    prism: PrismReranker, cache: ResultCache
) -> None:
    passes = prism.engine_loop.stats.passes
    full = prism.rerank(QUERY, DOCS)
    prefills = prism.engine_loop.stats.passes - passes  # the prefix's pass and the scoring passes
    relevant = [r.index for r in full if r.relevant]
    assert relevant, "no relevant document: nothing would be generated"
    cache.clear()
    step = 0.15
    # A step runs at most one prefill and one decode pass: the scoring passes fit, decoding
    # (prism.max_new_tokens decode passes) does not.
    budget = (2 * prefills + 0.5) * step
    assert prism.max_new_tokens > 2 * prefills + 3
    with slowed_passes(prism, step):
        start = time.monotonic()
        out = prism.rerank(QUERY, DOCS, time_budget=budget)
        elapsed = time.monotonic() - start
        depth = prism.engine_loop.queue_depth
    assert elapsed < budget + 2 * step + 0.5, f"overshot: {elapsed:.2f} s"
    assert depth == 0, "the engine kept the expired request"
    assert all(r.scored for r in out)
    assert [r.index for r in out] == [r.index for r in full]
    skipped = [r for r in out if r.evidence_skipped == TIME_BUDGET]
    assert skipped, "no document was flagged though decoding could not finish"
    assert all(r.evidence is None and not r.evidence_complete and r.raw_output is None for r in skipped)
    # what the budget cut was never cached: the next call generates it in full
    same(prism.rerank(QUERY, DOCS), full)
    assert cache.stats.entries == len(DOCS)


async def test_async_time_budget_and_cache(prism: PrismReranker, cache: ResultCache) -> None:
    out = await prism.arerank(QUERY, DOCS, time_budget=1e-9)
    assert not any(r.scored for r in out)
    assert cache.stats.entries == 0, "unscored documents were cached"
    first = await prism.arerank(QUERY, DOCS, top_n=2)
    assert await prism.arerank(QUERY, DOCS, top_n=2) == first
    assert await prism.ascore(QUERY, DOCS) == prism.score(QUERY, DOCS)


def test_cross_encoder_time_budget_and_cache(tiny_cross_encoder_path: str, cache: ResultCache) -> None:
    from prism_core.backends.cross_encoder import CrossEncoderReranker

    ce = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu", batch_tokens=64).load()
    first = ce.rerank(QUERY, DOCS)
    passes = ce.engine_loop.stats.passes
    assert ce.rerank(QUERY, DOCS) == first and ce.engine_loop.stats.passes == passes
    assert ce.cache_stats["hits"] == len(DOCS)
    cache.clear()
    slowed: list[float] = []

    def slow(*_: Any) -> None:  # returns None: a pre-hook's value would replace the inputs
        slowed.append(0.3)
        time.sleep(0.3)

    model: Any = ce.cross_encoder
    hook = model.register_forward_pre_hook(slow)
    try:
        out = ce.rerank(QUERY, DOCS, time_budget=0.1)
    finally:
        hook.remove()
    assert slowed, "the slowing hook never fired"
    scored = [r for r in out if r.scored]
    unscored = [r for r in out if not r.scored]
    assert unscored, "every batch ran within 0.1 s though each pass waits 0.3 s"
    assert [r.index for r in unscored] == sorted(r.index for r in unscored)
    assert {r.index for r in out} == set(range(len(DOCS)))
    assert all(r.score == pytest.approx(f.score) for r in scored for f in first if f.index == r.index)
