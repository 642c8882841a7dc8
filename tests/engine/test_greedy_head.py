"""The greedy head: every path gives ``head(hidden).argmax(-1)``, on real and adversarial heads."""

from __future__ import annotations

import pytest
import torch

from prism_core import PrismReranker
from prism_core.runtime import greedy_head
from prism_core.runtime.greedy_head import CPU_TALL_HEAD_ROWS, SCREEN_CANDIDATES, GreedyHead

needs_bf16 = pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no fast bfloat16 products"
)


@pytest.fixture(scope="module")
def model_head(tiny_path: str) -> torch.nn.Module:
    engine = PrismReranker(tiny_path, device="cpu").load()
    assert engine.runner is not None
    return engine.runner.head  # type: ignore[no-any-return]


def _linear(weight: torch.Tensor) -> torch.nn.Linear:
    head = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    head.weight.data = weight.clone()
    return head


def _check(head: torch.nn.Module, greedy: GreedyHead, hidden: torch.Tensor) -> None:
    with torch.inference_mode():
        assert torch.equal(greedy(hidden), head(hidden).argmax(-1))


@pytest.mark.parametrize("rows", [1, 3, CPU_TALL_HEAD_ROWS, CPU_TALL_HEAD_ROWS + 1, 40, 130])
@pytest.mark.parametrize("screen", ["1", "0"])
def test_the_greedy_token_is_the_full_vocabulary_argmax(model_head, monkeypatch, rows, screen) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(greedy_head.SCREEN_ENV, screen)
    greedy = GreedyHead(model_head)
    assert greedy.screened == (screen == "1" and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    gen = torch.Generator().manual_seed(rows)
    hidden = torch.randn(rows, model_head.weight.shape[1], generator=gen)
    for scale in (1e-3, 1.0, 50.0):
        _check(model_head, greedy, hidden * scale)
    hidden[rows // 2] = float("nan")  # a NaN row gets argmax's answer too, never an error
    _check(model_head, greedy, hidden)
    hidden[0] = float("inf")
    _check(model_head, greedy, hidden)


@needs_bf16
def test_near_ties_bfloat16_cannot_tell_apart_are_settled_in_float32() -> None:
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(5000, 48, generator=gen) * 0.02
    direction = torch.randn(48, generator=gen)
    # four rows bfloat16 sees as one: the largest in float32 comes before two and after one
    for row, excess in [(3, 0.0), (4000, 3e-6), (17, 6e-6), (4100, 0.0)]:
        weight[row] = direction * (1 + excess)
    head = _linear(weight)
    greedy = GreedyHead(head)
    assert greedy.screened
    hidden = direction[None, :].repeat(3, 1) * torch.tensor([[1.0], [7.0], [0.01]])
    with torch.inference_mode():
        assert greedy(hidden).tolist() == head(hidden).argmax(-1).tolist() == [17, 17, 17]


@needs_bf16
def test_exact_ties_keep_the_first_maximum_even_beyond_the_screens_width() -> None:
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(3000, 32, generator=gen) * 0.02
    direction = torch.randn(32, generator=gen)
    few = [2999, 700, 1500]  # three equal best rows: the lowest index wins
    many = list(range(1000, 1000 + 3 * SCREEN_CANDIDATES))  # more ties than the screen keeps
    weight[few] = direction
    head = _linear(weight)
    _check(head, GreedyHead(head), direction[None, :])
    weight[many] = -direction
    head = _linear(weight)
    greedy = GreedyHead(head)
    assert greedy.screened
    with torch.inference_mode():
        assert greedy(torch.stack([direction, -direction])).tolist() == [700, 1000]


def test_a_kernel_that_breaks_the_bound_turns_the_screen_off(model_head, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(greedy_head, "_U", 2.0**-30)  # a bound far tighter than bfloat16 can hold
    greedy = GreedyHead(model_head)
    assert not greedy.screened
    _check(model_head, greedy, torch.randn(5, model_head.weight.shape[1]))


def test_a_head_with_a_bias_or_another_dtype_uses_the_plain_argmax() -> None:
    head = torch.nn.Linear(16, 300)
    greedy = GreedyHead(head)
    assert not greedy.screened
    _check(head, greedy, torch.randn(4, 16))
    half = _linear(torch.randn(300, 16)).to(torch.bfloat16)
    assert not GreedyHead(half).screened
    _check(half, GreedyHead(half), torch.randn(4, 16, dtype=torch.bfloat16))
