"""The greedy head: every path gives ``head(hidden).argmax(-1)``, ties and NaN included."""

from __future__ import annotations

import pytest
import torch

from prism_core import PrismReranker
from prism_core.runtime.greedy_head import (
    CPU_HEAD_SLICE,
    CPU_TALL_HEAD_ROWS,
    GreedyHead,
    bfloat16_dot_is_fast,
)

#: Every test so marked runs on the float32 paths and on the bfloat16 screen (forced, on any CPU).
BOTH_PATHS = pytest.mark.parametrize("screen", [False, True], ids=["float32", "screen"])


@pytest.fixture(scope="module")
def model_head(tiny_path: str) -> torch.nn.Module:
    engine = PrismReranker(tiny_path, device="cpu").load()
    assert engine.runner is not None
    return engine.runner.head  # type: ignore[no-any-return]


def _check(head: torch.nn.Module, hidden: torch.Tensor, screen: bool | None = None) -> None:
    with torch.inference_mode():
        assert torch.equal(GreedyHead(head, screen=screen)(hidden), head(hidden).argmax(-1))


@BOTH_PATHS
@pytest.mark.parametrize("rows", [0, 1, 3, CPU_TALL_HEAD_ROWS, CPU_TALL_HEAD_ROWS + 1, 40, 130])
def test_the_greedy_token_is_the_full_vocabulary_argmax(model_head, rows, screen) -> None:  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(rows)
    hidden = torch.randn(rows, model_head.weight.shape[1], generator=gen)
    for scale in (1e-3, 1.0, 50.0):
        _check(model_head, hidden * scale, screen)
    if not rows:
        return
    hidden[rows // 2] = float("nan")  # a NaN row gets argmax's answer too, never an error
    _check(model_head, hidden, screen)


@BOTH_PATHS
@pytest.mark.parametrize("rows", [2, CPU_TALL_HEAD_ROWS + 4])
def test_ties_keep_the_first_maximum_across_vocabulary_slices(rows: int, screen: bool) -> None:
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(3 * CPU_HEAD_SLICE, 32, generator=gen) * 0.02
    direction = torch.randn(32, generator=gen)
    weight[[2 * CPU_HEAD_SLICE + 5, CPU_HEAD_SLICE + 7, CPU_HEAD_SLICE + 9]] = direction  # equal best rows
    head = torch.nn.Linear(32, weight.shape[0], bias=False)
    head.weight.data = weight
    hidden = direction[None, :].repeat(rows, 1)
    _check(head, hidden, screen)
    with torch.inference_mode():
        assert set(GreedyHead(head, screen=screen)(hidden).tolist()) == {CPU_HEAD_SLICE + 7}


def test_a_head_with_a_bias_uses_the_plain_argmax() -> None:
    head = torch.nn.Linear(16, 300)
    assert not GreedyHead(head).cpu
    _check(head, torch.randn(20, 16))


@pytest.mark.parametrize(("screen", "fast"), [(False, "_scan"), (True, "_screened")])
def test_finite_logits_take_the_fast_scan_and_overflow_the_nan_aware_one(  # type: ignore[no-untyped-def]
    monkeypatch, model_head, screen, fast
) -> None:
    rows = CPU_TALL_HEAD_ROWS + 8
    hidden = torch.randn(rows, model_head.weight.shape[1], generator=torch.Generator().manual_seed(5))
    greedy = GreedyHead(model_head, screen=screen)
    taken: list[str] = []
    for name in ("_scan", "_screened", "_scan_with_nan"):
        path = getattr(greedy, name)
        monkeypatch.setattr(greedy, name, lambda h, path=path, name=name: (taken.append(name), path(h))[1])
    with torch.inference_mode():
        assert torch.equal(greedy(hidden), model_head(hidden).argmax(-1))
        assert taken == [fast]
        huge = (
            hidden.sign() * 3e38
        )  # millions of logits overflow to ±inf: the path that follows argmax's rules
        assert bool(model_head(huge).isinf().any())
        assert torch.equal(greedy(huge), model_head(huge).argmax(-1))
        assert taken == [fast, "_scan_with_nan"]


@BOTH_PATHS
def test_the_fast_scan_keeps_the_first_of_equal_maxima_inside_and_across_slices(screen: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(3 * CPU_HEAD_SLICE, 16, generator=gen) * 0.02
    direction = torch.randn(16, generator=gen)
    # equal best logits: two in one slice (the first wins there), one in an earlier slice (wins overall)
    weight[[CPU_HEAD_SLICE + 11, CPU_HEAD_SLICE + 3, 2 * CPU_HEAD_SLICE + 1]] = direction
    head = torch.nn.Linear(16, weight.shape[0], bias=False)
    head.weight.data = weight
    hidden = direction[None, :].repeat(CPU_TALL_HEAD_ROWS + 1, 1)
    _check(head, hidden, screen)
    with torch.inference_mode():
        assert set(GreedyHead(head, screen=screen)(hidden).tolist()) == {CPU_HEAD_SLICE + 3}


@BOTH_PATHS
def test_one_head_serves_calls_in_and_out_of_inference_mode(model_head, screen) -> None:  # type: ignore[no-untyped-def]
    greedy = GreedyHead(model_head, screen=screen)
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


# ---------------------------------------------------------------------- the bfloat16 screen


def _near_tie_head(seed: int, vocab: int = 2 * CPU_HEAD_SLICE + 1000, hidden: int = 48) -> torch.nn.Linear:
    """Many tokens whose logits differ by less than bfloat16 can tell apart, spread over blocks and slices."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(vocab, hidden, generator=gen) * 0.05
    base = torch.randn(hidden, generator=gen)
    near = torch.randperm(vocab, generator=gen)[:400]
    weight[near] = base * (1 + 1e-3 * torch.randn(400, hidden, generator=gen))
    head = torch.nn.Linear(hidden, vocab, bias=False)
    head.weight.data = weight
    return head


@pytest.mark.parametrize("rows", [1, 5, CPU_TALL_HEAD_ROWS + 9])
def test_the_screen_finds_the_float32_argmax_where_bfloat16_alone_gets_it_wrong(rows: int) -> None:
    head = _near_tie_head(rows)
    gen = torch.Generator().manual_seed(100 + rows)
    hidden = head.weight[:1].detach() * 0 + torch.randn(rows, head.weight.shape[1], generator=gen) * 0.1
    hidden += head.weight[head.weight.norm(dim=1).argmax()].detach()  # point every row at the near ties
    with torch.inference_mode():
        exact = head(hidden).argmax(-1)
        by_bfloat16 = (hidden.bfloat16() @ head.weight.bfloat16().T).float().argmax(-1)
        assert not torch.equal(by_bfloat16, exact)  # the input is one where the screen alone is wrong
        assert torch.equal(GreedyHead(head, screen=True)(hidden), exact)


@pytest.mark.parametrize("near_ties", [True, False])
@pytest.mark.parametrize("scale", [1e-20, 1e-3, 1.0, 300.0])
def test_the_screen_margin_bounds_every_tokens_error(scale: float, near_ties: bool) -> None:
    """Twice the largest |float32 logit − screened value| over every token is within the margin."""
    if near_ties:
        head = _near_tie_head(7)
    else:
        head = torch.nn.Linear(48, 3 * CPU_HEAD_SLICE, bias=False)
        head.weight.data = torch.randn(3 * CPU_HEAD_SLICE, 48, generator=torch.Generator().manual_seed(6))
    greedy = GreedyHead(head, screen=True)
    gen = torch.Generator().manual_seed(8)
    hidden = torch.randn(12, head.weight.shape[1], generator=gen) * scale
    hidden[3] = scale  # a row of equal entries: every rounding error has one sign
    with torch.inference_mode():
        screen = greedy._screen_data()
        low = hidden.bfloat16()
        screened = torch.mm(low, screen.weight.T).float()
        error = (head(hidden) - screened).abs().amax(-1)
        margin = greedy._margin(hidden, low, screened.amax(-1), screen)
        assert bool((2 * error <= margin).all()), (error, margin)
        if not near_ties:  # on a Gaussian head it is a fraction of the logits' spread: it screens
            assert bool((margin < screened.std(-1) / 2).all()), (margin, screened.std(-1))


def test_the_screen_is_used_only_for_float32_cpu_heads() -> None:
    head = torch.nn.Linear(16, 300, bias=False)
    assert GreedyHead(head, screen=True).screen
    assert not GreedyHead(head, screen=False).screen
    low = torch.nn.Linear(16, 300, bias=False, dtype=torch.bfloat16)
    assert not GreedyHead(low, screen=True).screen  # bfloat16 logits: nothing to screen
    assert not GreedyHead(torch.nn.Linear(16, 300), screen=True).screen  # a bias: the plain argmax
    assert GreedyHead(head).screen == bfloat16_dot_is_fast()


def test_a_vocabulary_the_block_does_not_divide_gets_smaller_blocks() -> None:
    head = torch.nn.Linear(16, 151936, bias=False)  # Qwen3's vocabulary: 128 × 1187
    greedy = GreedyHead(head, screen=True)
    hidden = torch.randn(20, 16, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        assert torch.equal(greedy(hidden), head(hidden).argmax(-1))
        assert greedy._screen_data().block == 128
    odd = torch.nn.Linear(16, 1001, bias=False)  # 7 × 11 × 13: blocks of one token, still exact
    _check(odd, torch.randn(20, 16), True)
