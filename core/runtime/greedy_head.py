"""The greedy next token: each row's argmax over the full vocabulary, as cheaply as the device allows.

Decoding a tiny or small model on CPU spends much of a step in the output head: ``rows ×
vocabulary`` dot products (248k × hidden for Qwen3.5). Two exact paths:

- **GPU, or a head with a bias**: ``head(hidden).argmax(-1)``.
- **CPU**: ``W @ hidden.T`` for a few rows (a few rows times a large vocabulary is the slow shape
  for BLAS as ``hidden @ W.T``: measured on 2 cores, 3 rows × 248k, 2.5-4.4× slower); from a few
  dozen rows on, the maximum over vocabulary slices whose logits stay in cache, so the weights are
  read once per pass and no ``rows × vocabulary`` logits are written (measured on 2 cores, 248k
  vocabulary, hidden 64: 50 rows 68 → 32 ms, 80 rows 90 → 45 ms).

Each logit is the same dot product in every form, and ties keep the first maximum, as ``argmax``
does. (A bfloat16 screen with float32 verification was tried: the head itself ran ~2× faster,
but on this 2-core CPU every float32 pass after it ran ~2.5× slower, so it is not used.)
"""

from __future__ import annotations

from typing import Any

import torch

#: On CPU, steps with at most this many rows compute logits as ``W @ hidden.T``.
CPU_TALL_HEAD_ROWS = 16

#: On CPU, steps with more rows take the argmax over vocabulary slices of this many tokens.
CPU_HEAD_SLICE = 4096


class GreedyHead:
    """The argmax token of each row's logits, computed the cheapest exact way for this head.

    Args:
        head: The model's output embedding (``nn.Linear``, vocabulary × hidden).

    Example:
        >>> import torch
        >>> head = torch.nn.Linear(8, 50, bias=False)
        >>> hidden = torch.randn(20, 8)
        >>> with torch.inference_mode():
        ...     bool((GreedyHead(head)(hidden) == head(hidden).argmax(-1)).all())
        True
    """

    def __init__(self, head: Any) -> None:
        self.head = head
        self.weight: torch.Tensor = head.weight.detach()
        self.cpu = self.weight.device.type == "cpu" and getattr(head, "bias", None) is None

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.cpu:
            return self.head(hidden).argmax(-1)
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
