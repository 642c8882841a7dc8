"""The engine against the model card's per-document loop, on both tiny architectures."""

from __future__ import annotations

import random

import pytest

from prism_core import PrismReranker
from prism_core.testing.reference import ReferenceLoop

QUERY = "How does the borrow checker work?"
MAX_NEW = 12
_WORDS = [
    "rust",
    "memory",
    "safety",
    "borrow",
    "checker",
    "python",
    "paris",
    "tower",
    "energy",
    "glucose",
    "cell",
    "river",
    "bank",
    "loan",
    "rate",
    "quantum",
    "spin",
    "tokyo",
    "city",
    "apple",
    "fruit",
    "music",
    "piano",
    "code",
    "compile",
    "error",
]


def make_pool(n: int = 24, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.choice([5, 20, 60, 150]))) for _ in range(n)]


@pytest.fixture(scope="module")
def oracle_runs(tiny_path: str) -> tuple[str, list[str], list]:  # type: ignore[type-arg]
    docs = make_pool()
    outs = ReferenceLoop(tiny_path, max_new_tokens=MAX_NEW).run(QUERY, docs)
    assert sum(o.logit > 0 for o in outs) >= 2, "need documents with a 'yes' verdict to exercise generation"
    assert sum(o.logit <= 0 for o in outs) >= 2
    return tiny_path, docs, outs


@pytest.mark.parametrize("batch_tokens", [300, 100_000])
def test_scores_and_greedy_text_match_the_model_card_loop(oracle_runs, batch_tokens: int) -> None:  # type: ignore[no-untyped-def]
    path, docs, ref = oracle_runs
    engine = PrismReranker(path, device="cpu", max_new_tokens=MAX_NEW, batch_tokens=batch_tokens)
    results = engine.rerank(QUERY, docs)
    assert sorted(r.index for r in results) == list(range(len(docs)))
    for r in results:
        o = ref[r.index]
        assert abs(r.score - o.score) < 1e-4
        assert abs(r.logit - o.logit) < 1e-4
        assert r.relevant == (o.logit > 0)
        if r.relevant:
            assert r.raw_output == o.text  # identical greedy text, verdict included
        else:
            assert r.raw_output is None  # nothing generated for a "no"


def test_several_batches_really_happen(oracle_runs) -> None:  # type: ignore[no-untyped-def]
    from prism_core.runtime.batching import plan_batches

    path, docs, _ = oracle_runs
    engine = PrismReranker(path, device="cpu").load()
    assert engine.prompt_tokenizer is not None
    lengths = [len(p.ids) for p in engine.prompt_tokenizer.encode(QUERY, docs)]
    assert max(lengths) - min(lengths) > 100  # mixed lengths
    assert len(plan_batches(lengths, 300)) >= 4


def test_results_sorted_best_first_with_ties_by_index(oracle_runs) -> None:  # type: ignore[no-untyped-def]
    path, docs, _ = oracle_runs
    results = PrismReranker(path, device="cpu").rerank(QUERY, docs + docs[:2], evidence=False)
    keys = [(-r.logit, r.index) for r in results]
    assert keys == sorted(keys)


def test_generation_only_for_relevant_survivors_of_top_n_and_threshold(oracle_runs) -> None:  # type: ignore[no-untyped-def]
    path, docs, ref = oracle_runs
    engine = PrismReranker(path, device="cpu", max_new_tokens=MAX_NEW, batch_tokens=300)
    full = engine.rerank(QUERY, docs, evidence=False)
    for top_n in (1, 3, len(docs)):
        for threshold in (None, 0.5, full[2].score - 1e-5):  # paths agree to ~1e-6, not bit for bit
            results = engine.rerank(QUERY, docs, top_n=top_n, score_threshold=threshold)
            expected = [r for r in full if threshold is None or r.score >= threshold][:top_n]
            assert [r.index for r in results] == [r.index for r in expected]
            for r in results:
                assert (r.raw_output is not None) == r.relevant
                if r.relevant:
                    assert r.raw_output == ref[r.index].text


def test_evidence_false_is_a_pure_scoring_pass(oracle_runs) -> None:  # type: ignore[no-untyped-def]
    path, docs, ref = oracle_runs
    engine = PrismReranker(path, device="cpu")
    results = engine.rerank(QUERY, docs, evidence=False)
    assert all(r.raw_output is None and r.contribution is None and r.evidence is None for r in results)
    scores = engine.score(QUERY, docs)
    assert scores == pytest.approx([o.score for o in ref], abs=1e-4)


def test_no_generation_when_evidence_false(oracle_runs, spy) -> None:  # type: ignore[no-untyped-def]
    from prism_core.runtime.decode_state import DecodeBatch

    path, docs, _ = oracle_runs
    calls = spy(DecodeBatch, "join")
    engine = PrismReranker(path, device="cpu", max_new_tokens=4)
    engine.rerank(QUERY, docs, evidence=False)
    engine.score(QUERY, docs)
    assert calls == []
    results = engine.rerank(QUERY, docs, top_n=2)
    rows = sum(len(args[3]) for args, _ in calls)  # join(self, owner, state, docs, ...)
    assert rows == sum(r.relevant for r in results)  # only relevant survivors generate


def test_scoring_pass_runs_the_shared_prefix_once(oracle_runs, spy) -> None:  # type: ignore[no-untyped-def]
    from prism_core.runtime.runner import ModelRunner

    path, docs, ref = oracle_runs
    calls = spy(ModelRunner, "prefix_cache")
    engine = PrismReranker(path, device="cpu", batch_tokens=300)  # several right-padded batches
    scores = engine.score(QUERY, docs)
    assert len(calls) == 1 and len(calls[0][0][1]) > 100  # system + instruction + query, once
    assert scores == pytest.approx([o.score for o in ref], abs=1e-4)


def test_kept_caches_stay_within_about_two_batches(oracle_runs, spy) -> None:  # type: ignore[no-untyped-def]
    from prism_core.runtime.decode_state import DecodeBatch

    path, docs, ref = oracle_runs
    calls = spy(DecodeBatch, "join")
    budget = 600
    results = PrismReranker(path, device="cpu", max_new_tokens=MAX_NEW, batch_tokens=budget).rerank(
        QUERY, docs * 3
    )
    footprints = [int(args[2].attention_mask.sum()) for args, _ in calls]  # real cached tokens joined
    assert len(footprints) > 1  # decoded in several rounds, not all at the end
    assert max(footprints) <= 2 * budget
    assert sum(r.raw_output is not None for r in results) == 3 * sum(o.logit > 0 for o in ref)


def test_generating_requests_read_the_shared_prefix_once(oracle_runs, spy) -> None:  # type: ignore[no-untyped-def]
    """With evidence on too, system + instruction + query run once; each document's state is forked
    from it (no padding anywhere, so the state is exact), and greedy text equals the card loop's."""
    from prism_core.runtime.runner import ModelRunner

    path, docs, ref = oracle_runs
    prefixes = spy(ModelRunner, "prefix_cache")
    full = spy(ModelRunner, "prefill")
    forks = spy(ModelRunner, "prefill_after_prefix")
    engine = PrismReranker(path, device="cpu", max_new_tokens=MAX_NEW, batch_tokens=600)
    results = engine.rerank(QUERY, docs)
    assert len(prefixes) == 1 and len(prefixes[0][0][1]) > 100
    assert full == [] and len(forks) >= 2  # several batches, every one after the prefix
    for r in results:
        assert abs(r.logit - ref[r.index].logit) < 1e-4
        assert r.raw_output == (ref[r.index].text if r.relevant else None)


@pytest.mark.parametrize("evidence", [True, False])
def test_long_prompts_prefilled_in_chunks_match_the_model_card_loop(  # type: ignore[no-untyped-def]
    oracle_runs, monkeypatch, spy, evidence: bool
) -> None:
    """A prompt over ``LONG_PROMPT_CHUNK`` tokens runs in chunks of that many, its cache carried from
    chunk to chunk (whole prompts and continuations after the query prefix alike): scores and greedy
    text still equal the card loop's, and no pass of a chunked row runs more than a chunk."""
    from prism_core.runtime import pipeline

    path, docs, ref = oracle_runs
    monkeypatch.setattr(pipeline, "LONG_PROMPT_CHUNK", 48)
    passes = spy(pipeline.CausalExecutor, "run")
    engine = PrismReranker(path, device="cpu", max_new_tokens=MAX_NEW, batch_tokens=600)
    results = engine.rerank(QUERY, docs, evidence=evidence)
    chunks = [args[2] for args, _ in passes if isinstance(args[1], pipeline.ChunkKind)]
    assert chunks and all(len(rows) == 1 and len(rows[0]) <= 48 for rows in chunks)
    assert sum(isinstance(args[1], pipeline.ChunkKind) and args[1].last for args, _ in passes) >= 3
    assert sorted(r.index for r in results) == list(range(len(docs)))
    for r in results:
        o = ref[r.index]
        assert abs(r.logit - o.logit) < 1e-4
        if evidence and r.relevant:
            assert r.raw_output == o.text
