"""The greedy next token: each row's argmax over the full vocabulary, as cheaply as the device allows.

Decoding a tiny or small model on CPU spends most of a step in the output head: ``rows ×
vocabulary`` dot products (248k × hidden for Qwen3.5), compute-bound in float32. Three exact paths:

- **GPU, or a head with a bias**: ``head(hidden).argmax(-1)``.
- **CPU, screened** (float32 weights, a CPU with fast bfloat16 matrix products): a bfloat16 product
  ranks the vocabulary 3-10× faster; a proven error bound keeps every token that could still be the
  float32 maximum (a handful), and those few are recomputed in float32. The answer is the token
  ``head(hidden).argmax(-1)`` gives, first maximum on ties included; a row whose candidates do not
  fit, or whose values are not finite, takes the exact path below. The bound is checked against
  this machine's kernels once, when the head is built; if they break it, screening stays off.
  It costs a bfloat16 copy of the head (half its float32 size); ``PRISM_CPU_HEAD_SCREEN=0`` turns
  it off.
- **CPU, exact**: ``W @ hidden.T`` for a few rows, and from a few dozen rows on the maximum over
  vocabulary slices whose logits stay in cache.

Error bound of the screen (``u = 2**-8``, bfloat16's unit roundoff): rounding ``h`` and ``w_v`` to
bfloat16 moves each product ``h_i w_vi`` by at most ``(2u + u**2) |h_i w_vi|``; float32 accumulation
(ours and the reference's) adds at most ``2 H 2**-24`` of ``Σ |h_i w_vi| <= ||h|| ||w_v||``; the
bfloat16 output moves the result by at most ``2**-7 |logit|`` (either rounding mode). The bound
used is 1.5 times that sum.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

logger = logging.getLogger(__name__)

#: On CPU, exact steps with at most this many rows compute logits as ``W @ hidden.T``.
CPU_TALL_HEAD_ROWS = 16

#: On CPU, exact steps with more rows take the argmax over vocabulary slices of this many tokens.
CPU_HEAD_SLICE = 4096

#: How many bfloat16 leaders per row the screen keeps; a row with more candidates runs exactly.
SCREEN_CANDIDATES = 32

#: Set to ``0`` to keep the CPU head exact in float32 only (no bfloat16 copy of the head).
SCREEN_ENV = "PRISM_CPU_HEAD_SCREEN"

_U = 2.0**-8
_SAFETY = 1.5


class GreedyHead:
    """The argmax token of each row's logits, computed the cheapest exact way for this head.

    Args:
        head: The model's output embedding (``nn.Linear``, vocabulary × hidden).

    Example:
        >>> import torch
        >>> head = torch.nn.Linear(8, 50, bias=False)
        >>> hidden = torch.randn(3, 8)
        >>> with torch.inference_mode():
        ...     bool((GreedyHead(head)(hidden) == head(hidden).argmax(-1)).all())
        True
    """

    def __init__(self, head: Any) -> None:
        self.head = head
        self.weight: torch.Tensor = head.weight.detach()
        self.bias = getattr(head, "bias", None)
        self.cpu_exact = self.weight.device.type == "cpu" and self.bias is None
        self.screen: torch.Tensor | None = None
        if self.cpu_exact and self.weight.dtype == torch.float32 and _screen_wanted():
            with torch.inference_mode():
                self._build_screen()

    @property
    def screened(self) -> bool:
        """Whether rows go through the bfloat16 screen first."""
        return self.screen is not None

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.cpu_exact:
            return self.head(hidden).argmax(-1)
        if self.screen is None or hidden.dtype != torch.float32:
            return self._exact(hidden)
        return self._screened(hidden)

    def _exact(self, hidden: torch.Tensor) -> torch.Tensor:
        """Float32 argmax on CPU. A few rows times a large vocabulary is the slow shape for BLAS as
        ``hidden @ W.T`` (measured on 2 cores: 3 rows × 248k, 2.5-4.4× slower than ``W @ hidden.T``);
        from a few dozen rows on, writing the whole ``rows × vocabulary`` logits dominates, so the
        maximum runs over slices whose logits stay in cache, keeping the first maximum as ``argmax``
        does."""
        weight = self.weight
        if hidden.shape[0] <= CPU_TALL_HEAD_ROWS:
            return torch.mm(weight, hidden.T).argmax(0)
        best_value, best_index = torch.mm(hidden, weight[:CPU_HEAD_SLICE].T).max(-1)
        for start in range(CPU_HEAD_SLICE, weight.shape[0], CPU_HEAD_SLICE):
            value, index = torch.mm(hidden, weight[start : start + CPU_HEAD_SLICE].T).max(-1)
            # strictly greater keeps the first maximum; a NaN wins over numbers, as in ``argmax``
            better = (value > best_value) | (value.isnan() & ~best_value.isnan())
            best_value = torch.where(better, value, best_value)
            best_index = torch.where(better, index + start, best_index)
        return best_index

    def _screened(self, hidden: torch.Tensor) -> torch.Tensor:
        assert self.screen is not None
        approx = torch.mm(hidden.to(torch.bfloat16), self.screen.T)
        values, index = approx.topk(min(SCREEN_CANDIDATES, approx.shape[1]), dim=-1)
        values = values.float()
        margin = self._margin(hidden.norm(dim=-1))
        top = values[:, 0]
        floor = top - margin - _SAFETY * 2.0**-7 * top.abs()  # the best's lowest possible logit
        reach = values + margin[:, None] + _SAFETY * 2.0**-7 * values.abs()  # highest possible
        candidate = reach >= floor[:, None]
        # a row whose last kept leader may still win has candidates beyond them; so does NaN or inf
        spill = candidate[:, -1] | ~torch.isfinite(floor)
        exact = torch.bmm(self.weight[index], hidden[:, :, None]).squeeze(-1)
        exact = exact.masked_fill(~candidate, float("-inf"))
        best = exact.max(-1, keepdim=True).values
        first = torch.where(exact == best, index, self.weight.shape[0]).min(-1).values
        if bool(spill.any()):
            rows = spill.nonzero().flatten()
            first[rows] = self._exact(hidden[rows])
        return first

    def _margin(self, hidden_norm: torch.Tensor) -> torch.Tensor:
        """The input-rounding and accumulation part of the bound, per row (largest head row)."""
        assert self.screen is not None
        per_product = 2 * _U + _U**2 + 2 * self.weight.shape[1] * 2.0**-24
        return _SAFETY * per_product * hidden_norm * self.screen_row_norm

    def _build_screen(self) -> None:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            logger.debug("greedy head: this CPU has no fast bfloat16 products; exact float32 only")
            return
        self.screen = self.weight.to(torch.bfloat16)
        self.screen_row_norm = float(self.weight.norm(dim=-1).max())
        if not self._bound_holds():
            logger.info("greedy head: bfloat16 kernels here break the screen's error bound; exact only")
            self.screen = None

    def _bound_holds(self) -> bool:
        """Check the bound (without its safety factor) on this machine's kernels, every logit of a few
        random rows at several scales."""
        assert self.screen is not None
        gen = torch.Generator().manual_seed(0)
        probe = torch.randn(4, self.weight.shape[1], generator=gen, dtype=torch.float32)
        probe = probe * torch.tensor([[1e-3], [1.0], [30.0], [1e3]])
        approx = torch.mm(probe.to(torch.bfloat16), self.screen.T).float()
        reference = torch.mm(probe, self.weight.T)
        per_product = 2 * _U + _U**2 + 2 * self.weight.shape[1] * 2.0**-24
        bound = per_product * probe.norm(dim=-1)[:, None] * self.weight.norm(dim=-1)[None, :]
        bound = bound + 2.0**-7 * approx.abs()
        return bool(((approx - reference).abs() <= bound).all())


def _screen_wanted() -> bool:
    return os.environ.get(SCREEN_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}
