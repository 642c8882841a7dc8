"""Micro-batching: concurrent callers are coalesced into shared forward passes, exactly."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from prism_core import PrismReranker
from prism_core.runtime.runner import PrefillState
from prism_core.runtime.cache import PrefillScheduler, split_state


class SlowFakeRunner:
    """Verdict logits = (sum of ids, len) per prompt; the first pass is slow so others queue up."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def prefill(self, prompts, *, keep_cache: bool) -> PrefillState:  # type: ignore[no-untyped-def]
        if not self.batches:
            time.sleep(0.3)
        self.batches.append(len(prompts))
        width = max(len(p) for p in prompts)
        mask = torch.zeros(len(prompts), width, dtype=torch.long)
        for i, p in enumerate(prompts):
            mask[i, width - len(p) :] = 1
        logits = torch.tensor([[float(sum(p)), float(len(p))] for p in prompts])
        return PrefillState(logits, logits.clone(), mask, None)


def test_concurrent_callers_share_passes_and_get_their_own_rows() -> None:
    runner = SlowFakeRunner()
    scheduler = PrefillScheduler(runner, threading.RLock())  # type: ignore[arg-type]
    requests = [[[i, j] * (1 + i % 3) for j in range(1 + i % 4)] for i in range(8)]
    barrier = threading.Barrier(8)

    def call(prompts):  # type: ignore[no-untyped-def]
        barrier.wait()
        return scheduler.prefill(prompts, keep_cache=False, budget=10_000)

    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(call, requests))
    for prompts, state in zip(requests, states, strict=True):
        assert state.verdict_logits.tolist() == [[float(sum(p)), float(len(p))] for p in prompts]
    assert sum(runner.batches) == sum(len(r) for r in requests)
    assert len(runner.batches) < 8  # coalesced
    assert scheduler.passes == len(runner.batches)


def test_budget_keeps_groups_apart() -> None:
    runner = SlowFakeRunner()
    scheduler = PrefillScheduler(runner, threading.RLock())  # type: ignore[arg-type]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: scheduler.prefill([[1] * 10] * 2, keep_cache=False, budget=20), range(4)))
    assert runner.batches == [2, 2, 2, 2]  # 2 rows x 10 tokens already fill the budget


def test_errors_reach_every_caller_of_the_group() -> None:
    class Broken(SlowFakeRunner):
        def prefill(self, prompts, *, keep_cache: bool) -> PrefillState:  # type: ignore[no-untyped-def]
            raise torch.OutOfMemoryError("boom")

    scheduler = PrefillScheduler(Broken(), threading.RLock())  # type: ignore[arg-type]
    with pytest.raises(torch.OutOfMemoryError):
        scheduler.prefill([[1, 2]], keep_cache=False, budget=100)


def test_split_state_of_a_real_merged_batch_generates_exactly(tiny_qwen35_path: str) -> None:
    engine = PrismReranker(tiny_qwen35_path, device="cpu").load()
    runner, prompts = engine._runner, engine._prompts
    assert runner is not None and prompts is not None
    docs_a = ["short one", "a somewhat longer document about the borrow checker " * 3]
    docs_b = ["another document " * 12]
    ids_a = [p.ids for p in prompts.encode("q", docs_a)]
    ids_b = [p.ids for p in prompts.encode("q", docs_b)]
    merged = runner.prefill(ids_a + ids_b, keep_cache=True)
    part_a, part_b = split_state(merged, [2, 1])
    alone_a = runner.prefill(ids_a, keep_cache=True)
    alone_b = runner.prefill(ids_b, keep_cache=True)
    torch.testing.assert_close(part_a.verdict_logits, alone_a.verdict_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(part_b.verdict_logits, alone_b.verdict_logits, atol=1e-5, rtol=0)
    assert runner.generate(part_a, 6) == runner.generate(alone_a, 6)
    assert runner.generate(part_b, 6) == runner.generate(alone_b, 6)


def test_merged_states_of_different_widths_decode_exactly(tiny_path: str) -> None:
    from prism_core.runtime.cache import merge_states

    engine = PrismReranker(tiny_path, device="cpu").load()
    runner, prompts = engine._runner, engine._prompts
    assert runner is not None and prompts is not None
    short = [p.ids for p in prompts.encode("q", ["tiny", "short doc here"])]
    long = [p.ids for p in prompts.encode("q", ["a much longer document about memory safety " * 6])]
    expected = runner.generate(runner.prefill(short, keep_cache=True), 6) + runner.generate(
        runner.prefill(long, keep_cache=True), 6
    )
    a, b = runner.prefill(short, keep_cache=True), runner.prefill(long, keep_cache=True)
    assert a.attention_mask.shape[1] != b.attention_mask.shape[1]
    merged = merge_states([a, b])
    assert merged.last_hidden.shape[0] == 3
    assert runner.generate(merged, 6) == expected
