"""The model runner's fast paths, each checked against the plain computation it replaces."""

from __future__ import annotations

import pytest
import torch

from prism_core import PrismReranker
from prism_core.runtime.runner import ModelRunner
from prism_core.testing.reference import ReferenceLoop

DOCS = [
    "tiny",
    "Rust is a systems programming language focused on memory safety. " * 4,
    "The Eiffel Tower was completed in 1889. " * 12,
    "short doc here",
    "Photosynthesis converts light energy into chemical energy stored in glucose. " * 7,
]


@pytest.fixture(scope="module")
def runner_and_ids(tiny_path: str) -> tuple[ModelRunner, list[list[int]], str]:
    engine = PrismReranker(tiny_path, device="cpu").load()
    assert engine.runner is not None and engine.prompt_tokenizer is not None
    ids = [p.ids for p in engine.prompt_tokenizer.encode("what is rust?", DOCS)]
    assert len({len(i) for i in ids}) == len(ids)  # every row padded differently
    return engine.runner, ids, tiny_path


def test_scoring_pass_is_right_padded_without_a_mask_and_exact(runner_and_ids, spy) -> None:  # type: ignore[no-untyped-def]
    runner, ids, _ = runner_and_ids
    calls = spy(runner.body, "forward")
    fast = runner.prefill(ids, keep_cache=False)
    assert calls[-1][1].get("attention_mask") is None  # the plain causal kernel, no padding mask
    assert fast.cache is None
    kept = runner.prefill(ids, keep_cache=True)  # left-padded with a mask, cache kept
    assert calls[-1][1].get("attention_mask") is not None
    torch.testing.assert_close(fast.verdict_logits, kept.verdict_logits, atol=1e-4, rtol=0)
    one_by_one = torch.cat([runner.prefill([i], keep_cache=False).verdict_logits for i in ids])
    torch.testing.assert_close(fast.verdict_logits, one_by_one, atol=1e-4, rtol=0)
    assert fast.attention_mask.sum(-1).tolist() == [len(i) for i in ids]


def test_scores_without_a_shared_prefix_match_the_card_loop(runner_and_ids, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from prism_core.runtime import pipeline

    _, _, path = runner_and_ids
    monkeypatch.setattr(pipeline, "MIN_SHARED_PREFIX", 10**9)  # every prompt runs whole
    scores = PrismReranker(path, device="cpu", batch_tokens=600).score("what is rust?", DOCS)
    ref = ReferenceLoop(path, max_new_tokens=1).run("what is rust?", DOCS, generate=False)
    assert scores == pytest.approx([o.score for o in ref], abs=1e-4)


def test_long_kept_prefill_is_unpadded_and_decodes_the_same(runner_and_ids, monkeypatch, spy) -> None:  # type: ignore[no-untyped-def]
    from prism_core.runtime import runner as inference

    runner, ids, _ = runner_and_ids
    ids = [*sorted(ids, key=len, reverse=True), ids[0]]  # an equal-length pair shares a pass
    monkeypatch.setattr(inference, "CPU_UNPADDED_MIN_WIDTH", 10**9)
    padded = runner.prefill(ids, keep_cache=True)
    expected = runner.generate(padded, 8)
    monkeypatch.setattr(inference, "CPU_UNPADDED_MIN_WIDTH", 1)
    calls = spy(runner.body, "forward")
    unpadded = runner.prefill(ids, keep_cache=True)
    assert len(calls) == len(ids) - 1  # one pass per distinct length, in order
    masks = [kwargs.get("attention_mask") for _, kwargs in calls]
    assert all(m is None or bool(m.all()) for m in masks)
    torch.testing.assert_close(unpadded.verdict_logits, padded.verdict_logits, atol=1e-4, rtol=0)
    assert unpadded.attention_mask.sum(-1).tolist() == [len(i) for i in ids]
    assert runner.generate(unpadded, 8) == expected


def test_rows_leave_at_end_of_turn_or_evidence_close(runner_and_ids, monkeypatch, spy) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from prism_core.prism.parsing import EVIDENCE_CLOSE

    runner, ids, _ = runner_and_ids
    ids = ids[:4]
    free = runner.generate(runner.prefill(ids, keep_cache=True), 10)  # nothing stops these rows
    end_of_turn = free[0][2]  # row 0 ends its turn with its third token
    closing_tail = free[1][:5][-8:]  # row 1 writes "</evidence>" with its fifth token
    monkeypatch.setattr(runner, "stop_ids", torch.tensor([end_of_turn]))
    everything = torch.ones(runner.head.weight.shape[0], dtype=torch.bool)
    monkeypatch.setattr(runner, "_closing_mask", lambda last_char: everything)
    fake = SimpleNamespace(decode=lambda tail: EVIDENCE_CLOSE if list(tail) == closing_tail else "text")
    monkeypatch.setattr(runner, "tokenizer", fake)

    def expected(row: list[int]) -> list[int]:
        for i, token in enumerate(row):
            if token == end_of_turn or row[: i + 1][-8:] == closing_tail:
                return row[: i + 1]
        return row

    calls = spy(runner.body, "forward")
    got = runner.generate(runner.prefill(ids, keep_cache=True), 10, stop_strings=(EVIDENCE_CLOSE,))
    assert got == [expected(row) for row in free]
    assert len(got[0]) == 3 and len(got[1]) == 5
    rows_per_step = [kwargs["input_ids"].shape[0] for _, kwargs in calls[1:]]  # after the prefill
    assert rows_per_step == sorted(rows_per_step, reverse=True) and rows_per_step[-1] < len(ids)
