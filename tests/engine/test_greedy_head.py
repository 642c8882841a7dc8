"""The greedy head: every path gives ``head(hidden).argmax(-1)``, ties and NaN included."""

from __future__ import annotations

import pytest
import torch

from prism_core import PrismReranker
from prism_core.runtime.greedy_head import CPU_HEAD_SLICE, CPU_TALL_HEAD_ROWS, GreedyHead


@pytest.fixture(scope="module")
def model_head(tiny_path: str) -> torch.nn.Module:
    engine = PrismReranker(tiny_path, device="cpu").load()
    assert engine.runner is not None
    return engine.runner.head  # type: ignore[no-any-return]


def _check(head: torch.nn.Module, hidden: torch.Tensor) -> None:
    with torch.inference_mode():
        assert torch.equal(GreedyHead(head)(hidden), head(hidden).argmax(-1))


@pytest.mark.parametrize("rows", [1, 3, CPU_TALL_HEAD_ROWS, CPU_TALL_HEAD_ROWS + 1, 40, 130])
def test_the_greedy_token_is_the_full_vocabulary_argmax(model_head, rows) -> None:  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(rows)
    hidden = torch.randn(rows, model_head.weight.shape[1], generator=gen)
    for scale in (1e-3, 1.0, 50.0):
        _check(model_head, hidden * scale)
    hidden[rows // 2] = float("nan")  # a NaN row gets argmax's answer too, never an error
    _check(model_head, hidden)


@pytest.mark.parametrize("rows", [2, CPU_TALL_HEAD_ROWS + 4])
def test_ties_keep_the_first_maximum_across_vocabulary_slices(rows: int) -> None:
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(3 * CPU_HEAD_SLICE, 32, generator=gen) * 0.02
    direction = torch.randn(32, generator=gen)
    weight[[2 * CPU_HEAD_SLICE + 5, CPU_HEAD_SLICE + 7, CPU_HEAD_SLICE + 9]] = direction  # equal best rows
    head = torch.nn.Linear(32, weight.shape[0], bias=False)
    head.weight.data = weight
    hidden = direction[None, :].repeat(rows, 1)
    _check(head, hidden)
    with torch.inference_mode():
        assert set(GreedyHead(head)(hidden).tolist()) == {CPU_HEAD_SLICE + 7}


def test_a_head_with_a_bias_uses_the_plain_argmax() -> None:
    head = torch.nn.Linear(16, 300)
    assert not GreedyHead(head).cpu
    _check(head, torch.randn(20, 16))


def test_finite_logits_take_the_fast_scan_and_overflow_the_nan_aware_one(monkeypatch, model_head) -> None:  # type: ignore[no-untyped-def]
    rows = CPU_TALL_HEAD_ROWS + 8
    hidden = torch.randn(rows, model_head.weight.shape[1], generator=torch.Generator().manual_seed(5))
    greedy = GreedyHead(model_head)
    taken: list[str] = []
    for name in ("_scan", "_scan_with_nan"):
        path = getattr(greedy, name)
        monkeypatch.setattr(greedy, name, lambda h, path=path, name=name: (taken.append(name), path(h))[1])
    with torch.inference_mode():
        assert torch.equal(greedy(hidden), model_head(hidden).argmax(-1))
        assert taken == ["_scan"]
        huge = (
            hidden.sign() * 3e38
        )  # millions of logits overflow to ±inf: the path that follows argmax's rules
        assert bool(model_head(huge).isinf().any())
        assert torch.equal(greedy(huge), model_head(huge).argmax(-1))
        assert taken == ["_scan", "_scan_with_nan"]


def test_the_fast_scan_keeps_the_first_of_equal_maxima_inside_and_across_slices() -> None:
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(3 * CPU_HEAD_SLICE, 16, generator=gen) * 0.02
    direction = torch.randn(16, generator=gen)
    # equal best logits: two in one slice (the first wins there), one in an earlier slice (wins overall)
    weight[[CPU_HEAD_SLICE + 11, CPU_HEAD_SLICE + 3, 2 * CPU_HEAD_SLICE + 1]] = direction
    head = torch.nn.Linear(16, weight.shape[0], bias=False)
    head.weight.data = weight
    hidden = direction[None, :].repeat(CPU_TALL_HEAD_ROWS + 1, 1)
    _check(head, hidden)
    with torch.inference_mode():
        assert set(GreedyHead(head)(hidden).tolist()) == {CPU_HEAD_SLICE + 3}


def test_one_head_serves_calls_in_and_out_of_inference_mode(model_head) -> None:  # type: ignore[no-untyped-def]
    greedy = GreedyHead(model_head)
    for rows in (3, CPU_TALL_HEAD_ROWS + 5):  # both CPU paths write the per-thread logits buffer
        hidden = torch.randn(rows, model_head.weight.shape[1], generator=torch.Generator().manual_seed(rows))
        with torch.no_grad():
            expected = model_head(hidden).argmax(-1)
        with torch.inference_mode():
            assert torch.equal(greedy(hidden), expected)
        with torch.no_grad():
            assert torch.equal(greedy(hidden), expected)
        with torch.inference_mode():
            assert torch.equal(greedy(hidden), expected)
