"""Token-budget batches over length-sorted documents."""

from __future__ import annotations

import random

import pytest

from prism_core.runtime.batching import plan_batches


def test_every_index_once_and_budget_respected() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(10, 3000) for _ in range(200)]
    batches = plan_batches(lengths, batch_tokens=8000)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(200))
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * longest <= 8000
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)  # longest batch first: OOM shows early


def test_short_documents_share_batches_long_ones_do_not() -> None:
    batches = plan_batches([100] * 10 + [5000], batch_tokens=1000)
    assert batches[0] == [10]  # over budget alone: a batch of its own
    assert [len(b) for b in batches[1:]] == [10]


def test_empty_input_and_bad_budget() -> None:
    assert plan_batches([], 10) == []
    with pytest.raises(ValueError, match="batch_tokens must be >= 1, got 0"):
        plan_batches([1], 0)


def test_shared_prefix_only_when_it_pays() -> None:
    from prism_core.runtime.pipeline import RerankJob

    prefix = list(range(200))

    def forked(*doc_lengths: int, generate: bool = False) -> list[bool]:
        prompts = [prefix + [1000 + i] * n for i, n in enumerate(doc_lengths)]
        job = RerankJob(
            prompts,
            generate=generate,
            top_n=None,
            threshold=None,
            max_new_tokens=4,
            batch_tokens=10**6,
            prefix_lens=[len(prefix)] * len(prompts),
        )
        return [b.forked for b in job.batches for _ in b.rows]

    assert forked(50, 120, 500) == [False, True, True]  # short documents run after the prefix
    assert forked(2000, 1800, 2100) == [False] * 3  # long ones: full prompts are cheaper to score
    assert forked(2000, 50, generate=True) == [True, True]  # rows that decode always fork
