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


def test_a_request_offers_a_planned_batch_of_the_leaders_kind_first() -> None:
    from prism_core.runtime.pipeline import AfterPrefixKind, PrefixHandle, RerankJob

    prefix = list(range(200))
    # continuations of 30, 30 and 20 tokens: two batches of exact lengths (rows that decode)
    prompts = [prefix + [1000 + i] * n for i, n in enumerate((30, 30, 20))]
    job = RerankJob(prompts, generate=True, top_n=None, threshold=None, max_new_tokens=4,
                    batch_tokens=10**6, prefix_lens=[len(prefix)] * 3)  # fmt: skip
    prefix_pass = job.next_pass()
    assert prefix_pass is not None
    job.on_pass(prefix_pass, object())  # the prefix ran: its cache (opaque here)
    assert job.next_pass().key.width == 30  # type: ignore[union-attr]  # longest first by plan
    other = PrefixHandle(object(), len(prefix))  # another request's prefix, the same ids
    like = AfterPrefixKind(other, True, 20, job.next_pass().key.prefix)  # type: ignore[union-attr]
    offered = job.next_pass_like(like)
    assert offered is not None and offered.key == like and len(offered.rows) == 1
    assert [len(r) for r in offered.rows] == [20]
    assert job.next_pass().key == like  # asking again gives the same pass: it is now the next one
    # a kind the request has no batch of: its own next pass, as before
    assert job.next_pass_like(AfterPrefixKind(other, True, 7, like.prefix)) == job.next_pass()
    assert sorted(i for b in job.batches for i in b.rows) == [0, 1, 2]  # nothing lost or repeated
