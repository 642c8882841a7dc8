"""Keeping transformers' messages to what a user can act on.

transformers warns once per kernel when Qwen3.5's Gated DeltaNet layers run its reference PyTorch
code instead of the fused ``flash-linear-attention`` / ``causal-conv1d`` kernels: four lines per
process, each saying "much slower", which on a CPU (where those kernels do not run at all) point at
something the user cannot install. :func:`fold_kernel_fallback_warnings` replaces them with one
line of ours that says what they mean.

Example:
    >>> from prism_core.runtime.quiet import fold_kernel_fallback_warnings
    >>> fold_kernel_fallback_warnings()
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)

#: The logger transformers warns through when a kernel falls back to PyTorch.
KERNEL_LOGGER = "transformers.integrations.hub_kernels"

#: What every kernel-fallback message contains.
FALLBACK_TEXT = "is falling back to its reference PyTorch implementation"

#: The one line said instead of transformers' per-kernel warnings.
FOLDED_MESSAGE = (
    "Qwen3.5's linear-attention layers run transformers' reference PyTorch code (the fused "
    "flash-linear-attention / causal-conv1d kernels are GPU-only or not installed): results are exact, "
    'only slower. Expected on a CPU; on a CUDA GPU, pip install "prism-integrations[kernels]".'
)


class _KernelFallbackFilter(logging.Filter):
    """Drops transformers' kernel-fallback warnings, logging :data:`FOLDED_MESSAGE` once instead."""

    def __init__(self) -> None:
        super().__init__("prism-kernel-fallback")
        self._said = False
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if FALLBACK_TEXT not in record.getMessage():
            return True
        with self._lock:
            first, self._said = not self._said, True
        if first:
            logger.warning(FOLDED_MESSAGE)
        return False


_filter = _KernelFallbackFilter()


def fold_kernel_fallback_warnings() -> None:
    """Fold transformers' kernel-fallback warnings into one line of ours (idempotent, process-wide)."""
    kernel_logger = logging.getLogger(KERNEL_LOGGER)
    if _filter not in kernel_logger.filters:
        kernel_logger.addFilter(_filter)


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """transformers' and huggingface_hub's progress bars off inside the block (restored after).

    Example:
        >>> with no_progress_bars():
        ...     pass
    """
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
