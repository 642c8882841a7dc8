"""The greedy next token: each row's argmax over the full vocabulary, as cheaply as the device allows.

Decoding a tiny or small model on CPU spends much of a step in the output head: ``rows ×
vocabulary`` dot products (248k × hidden for Qwen3.5). The paths, all exact:

- **GPU, or a head with a bias**: ``head(hidden).argmax(-1)``.
- **CPU, float32 weights, a CPU with bfloat16 dot products** (AVX512-BF16 or AMX): a **screen**.
  A bfloat16 copy of the head (made once, on the decoding thread: half the weights' bytes, and
  dot products at twice the rate) scores every token, and each row keeps its best screened value
  per block of 256 tokens. The float32 logit of every token differs from its screened value by a
  bound computed per row from the rounding of both operands, the float32 accumulation and the
  bfloat16 result (:meth:`GreedyHead._margin`), so every token that could be the argmax lies in a
  block whose best screened value is within twice that bound of the row's best; those blocks (one
  to three a row) get their float32 logits, and the argmax over them, first index on ties, is the
  answer. Measured on 2 cores (AVX512-BF16), 248k vocabulary, hidden 64, best of 15, alternated
  with the float32 path: 1 row 2.8 → 2.3 ms, 10 rows 8.7 → 4.5 ms, 56 rows 21.9 → 9.8 ms, 90 rows
  29.5 → 13.9 ms; hidden 1024 (the 0.8B shape): 1 row 60 → 36 ms, 56 rows 334 → 180 ms
  (``python benchmarks/greedy_head.py [--hidden 1024]``). The copy costs half the head's float32
  bytes (the 0.8B model: ~0.5 GB).
- **CPU otherwise**: ``W @ hidden.T`` for a few rows (a few rows times a large vocabulary is the slow
  shape for BLAS as ``hidden @ W.T``: measured on 2 cores, 3 rows × 248k, 2.5-4.4× slower); from a
  few dozen rows on, a scan over vocabulary slices whose logits stay in cache, so the weights are read
  once per pass and no ``rows × vocabulary`` logits are written. The scan keeps each row's best value
  with ``amax`` (a tenth of the cost of ``max`` with indices on this CPU) and takes the index only in
  a slice that beats it (a handful of slices a row). Measured on 2 cores, 248k vocabulary, hidden 64,
  best of 12: 55 rows 71.7 ms as one product, 28.3 ms slice by slice with ``max``, 21.6 ms with this
  scan.

Exact, whatever the path: each float32 logit is the same dot product in every form, and ties keep the
first maximum, as ``argmax`` does. The screen and the scan are used only where no logit can overflow
(``max|hidden| × max|W| × hidden size`` far below the float maximum, so every logit is finite);
otherwise (a NaN or huge hidden state) the slice-by-slice ``max`` path, which follows ``argmax``'s NaN
rule, answers. Everything derived from the weights (the bound, the bfloat16 copy) is made on the
thread that decodes, on first use: on 2 cores, one parallel PyTorch operation on another thread (the
loading thread) made every later pass of the engine ~2.5× slower (a second OpenMP team).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

#: On CPU, steps with at most this many rows compute logits as ``W @ hidden.T``.
CPU_TALL_HEAD_ROWS = 16

#: On CPU, steps with more rows take the argmax over vocabulary slices of this many tokens.
CPU_HEAD_SLICE = 16384

#: The screen keeps each row's best screened value per block of this many tokens.
SCREEN_BLOCK = 256


@dataclass(frozen=True)
class _Screen:
    """The bfloat16 copy of a head and the norms its error bound needs (see ``GreedyHead._margin``)."""

    weight: torch.Tensor
    block: int
    hidden_size: int
    norm_max: float  # max_j ‖w_j‖
    rounding_max: float  # max_j ‖w_j − ŵ_j‖
    low_norm_max: float  # max_j ‖ŵ_j‖


def bfloat16_dot_is_fast() -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


class GreedyHead:
    """The argmax token of each row's logits, computed the cheapest exact way for this head.

    Args:
        head: The model's output embedding (``nn.Linear``, vocabulary × hidden).
        screen: Whether a CPU head with float32 weights may use the bfloat16 screen (``None``: where
            the CPU has bfloat16 dot products). Every path gives the same tokens.

    Example:
        >>> import torch
        >>> head = torch.nn.Linear(8, 50, bias=False)
        >>> hidden = torch.randn(20, 8)
        >>> with torch.inference_mode():
        ...     bool((GreedyHead(head)(hidden) == head(hidden).argmax(-1)).all())
        True
    """

    def __init__(self, head: Any, screen: bool | None = None) -> None:
        self.head = head
        self.weight: torch.Tensor = head.weight.detach()
        self.cpu = self.weight.device.type == "cpu" and getattr(head, "bias", None) is None
        if screen is None:
            screen = bfloat16_dot_is_fast()
        self.screen = bool(screen) and self.cpu and self.weight.dtype == torch.float32
        self._local = threading.local()  # each thread's logits buffers (see _workspace)
        # Derived from the weights on first use, on the thread that decodes (see the module notes).
        self._logit_bound: float | None = None
        self._screen: _Screen | None = None

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.cpu:
            return self.head(hidden).argmax(-1)
        if not hidden.shape[0]:
            return torch.empty(0, dtype=torch.long)
        small = hidden.shape[0] <= CPU_TALL_HEAD_ROWS
        if small and not self.screen:
            return self._tall(hidden)
        if self._logit_bound is None:
            # The largest |logit| a hidden state of max-norm 1 can give, bounded: max|W| × hidden size.
            low, high = self.weight.aminmax()
            self._logit_bound = max(-float(low), float(high)) * self.weight.shape[1]
        # No logit can be infinite or NaN below a quarter of the dtype's maximum: the fast paths are exact.
        if float(hidden.abs().amax()) * self._logit_bound < torch.finfo(hidden.dtype).max / 4:
            return self._screened(hidden) if self.screen else self._scan(hidden)
        return self._tall(hidden) if small else self._scan_with_nan(hidden)

    def _tall(self, hidden: torch.Tensor) -> torch.Tensor:
        """A few rows: every logit as ``W @ hidden.T`` (the fast BLAS shape for few rows), then ``argmax``."""
        logits = self._workspace(self.weight.shape[0], hidden.shape[0], hidden.dtype)
        return torch.mm(self.weight, hidden.T, out=logits).argmax(0)

    def _scan(self, hidden: torch.Tensor) -> torch.Tensor:
        """Every logit is finite here: ``amax`` per slice; the index only where a slice beats the best."""
        weight, rows = self.weight, hidden.shape[0]
        best_value = torch.full((rows,), float("-inf"), dtype=hidden.dtype)
        best_index = torch.zeros(rows, dtype=torch.long)
        for start in range(0, weight.shape[0], CPU_HEAD_SLICE):
            part = weight[start : start + CPU_HEAD_SLICE]
            logits = torch.mm(hidden, part.T, out=self._workspace(rows, part.shape[0], hidden.dtype))
            value = logits.amax(-1)
            better = value > best_value  # strictly: an equal value later keeps the first maximum
            if bool(better.any()):
                won = better.nonzero().squeeze(1)
                best_index[won] = logits[won].argmax(-1) + start
                best_value = torch.where(better, value, best_value)
        return best_index

    def _screened(self, hidden: torch.Tensor) -> torch.Tensor:
        """Every logit is finite here: the bfloat16 screen, then float32 logits in the few hot blocks.

        The screen keeps each row's best screened value per block of tokens. Every token whose
        float32 logit is the row's maximum has a screened value within ``margin`` of the row's best
        screened value (see :meth:`_margin`), so only the blocks within ``margin`` of it (one to three
        a row) get their float32 logits; the argmax over those, first index on ties, is the answer.
        """
        screen = self._screen_data()
        weight, size = screen.weight, screen.block
        rows, vocab = hidden.shape[0], weight.shape[0]
        low = hidden.to(torch.bfloat16)
        maxima = []  # each slice's block maxima, rows × blocks
        for start in range(0, vocab, CPU_HEAD_SLICE):
            part = weight[start : start + CPU_HEAD_SLICE]
            n = part.shape[0]
            logits = torch.mm(low, part.T, out=self._workspace(rows, n, torch.bfloat16))
            wide = self._workspace(rows, n, torch.float32).copy_(logits)  # float32 reductions are faster
            maxima.append(wide.view(rows, n // size, size).amax(-1))
        block_max = torch.cat(maxima, 1)
        best = block_max.amax(-1)
        margin = self._margin(hidden, low, best, screen)
        row, block = (block_max >= (best - margin)[:, None]).nonzero(as_tuple=True)
        exact = torch.bmm(  # hot pairs × block tokens, float32
            self.weight.view(-1, size, self.weight.shape[1]).index_select(0, block), hidden[row][:, :, None]
        ).squeeze(2)
        tokens = block[:, None] * size + torch.arange(size)
        # per row: the largest float32 logit over its hot blocks, then the first token that has it
        row_best = torch.full((rows,), float("-inf")).scatter_reduce_(0, row, exact.amax(-1), "amax")
        first = torch.where(exact == row_best[row][:, None], tokens, vocab).amin(-1)
        return torch.full((rows,), vocab).scatter_reduce_(0, row, first, "amin")

    @staticmethod
    def _margin(hidden: torch.Tensor, low: torch.Tensor, best: torch.Tensor, screen: _Screen) -> torch.Tensor:
        """Per row, a bound on ``e_j + e_k``: the screen errors of an argmax token ``j`` and of the
        token ``k`` with the best screened value (``e = |float32 logit − screened value|``).

        With ``ĥ``, ``ŵ`` the bfloat16 roundings (``u = 2⁻⁸``), ``K`` the hidden size:
        ``e ≤ ‖h − ĥ‖·max‖w‖ + ‖ĥ‖·max‖w − ŵ‖`` (the rounding of the operands, Cauchy-Schwarz)
        ``+ K·2⁻²⁴·‖ĥ‖·max‖ŵ‖`` (float32 accumulation) ``+ u·|screened value|`` (the bfloat16 result).
        Both tokens' screened values lie in ``[best − margin, best]``, so the result terms add at most
        ``u·(2|best| + margin)``; solved for ``margin``, with a 1 % allowance and a floor for
        subnormals (which the bfloat16 dot products flush to zero).
        """
        u = 2.0**-8
        rounded = low.float()
        low_norm = rounded.norm(dim=1)
        operands = (hidden.float() - rounded).norm(dim=1) * screen.norm_max + low_norm * screen.rounding_max
        accumulation = low_norm * (screen.hidden_size * 2.0**-24 * screen.low_norm_max)
        total = 2 * (operands + accumulation) + 2 * u * (1 + u) * best.abs()
        return total / (1 - u - u * u) * 1.01 + 1e-30

    def _screen_data(self) -> _Screen:
        """The bfloat16 head and its norms, made on first use on the calling (decoding) thread."""
        if self._screen is None:
            low = self.weight.to(torch.bfloat16)
            rounded = low.float()
            vocab = self.weight.shape[0]
            block = SCREEN_BLOCK
            while vocab % block:  # blocks tile the vocabulary (Qwen3.5: 256, Qwen3: 128)
                block //= 2
            self._screen = _Screen(
                weight=low,
                block=block,
                hidden_size=self.weight.shape[1],
                norm_max=float(self.weight.norm(dim=1).amax()),
                rounding_max=float((self.weight - rounded).norm(dim=1).amax()),
                low_norm_max=float(rounded.norm(dim=1).amax()),
            )
        return self._screen

    def _workspace(self, rows: int, columns: int, dtype: torch.dtype) -> torch.Tensor:
        """A ``rows × columns`` buffer for logits, kept per thread and dtype and grown as needed.

        Megabytes of logits allocated afresh every pass go back and forth to the system allocator;
        reusing one buffer measured 3-10 % faster on 2 cores (94 rows: 34.9 → 31.7 ms, best of 15).
        Kept per thread, so two threads calling one head never share it.
        """
        size = rows * columns
        buffers: dict[torch.dtype, torch.Tensor] | None = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        buffer = buffers.get(dtype)
        if buffer is None or buffer.numel() < size:
            # a normal tensor, not an inference one: callers in and out of inference mode may write it
            with torch.inference_mode(False):
                buffer = torch.empty(size, dtype=dtype)
            buffers[dtype] = buffer
        return buffer[:size].view(rows, columns)

    def _scan_with_nan(self, hidden: torch.Tensor) -> torch.Tensor:
        """Slice by slice with indices, following ``argmax``'s rule that a NaN is the maximum."""
        weight = self.weight
        best_value, best_index = torch.mm(hidden, weight[:CPU_HEAD_SLICE].T).max(-1)
        for start in range(CPU_HEAD_SLICE, weight.shape[0], CPU_HEAD_SLICE):
            value, index = torch.mm(hidden, weight[start : start + CPU_HEAD_SLICE].T).max(-1)
            # strictly greater keeps the first maximum; a NaN wins over numbers, as in ``argmax``
            better = (value > best_value) | (value.isnan() & ~best_value.isnan())
            best_value = torch.where(better, value, best_value)
            best_index = torch.where(better, index + start, best_index)
        return best_index
