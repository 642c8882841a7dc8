"""Batching by a token budget over length-sorted documents.

A fixed batch *size* wastes work on padding (a 30-token and a 2,000-token document in one batch)
and overflows memory on long documents. Here documents are sorted by prompt length, longest first
(so an out-of-memory error shows on the first batch, not the last), and cut into batches whose
padded size ``rows × longest row`` stays within ``batch_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[int], batch_tokens: int, max_rows: int | None = None) -> list[list[int]]:
    """Group indices into batches of padded size at most ``batch_tokens``.

    A single prompt longer than the budget gets a batch of its own.

    Args:
        lengths: Prompt length of each item, in input order.
        batch_tokens: Budget for ``rows × longest row`` in one batch.
        max_rows: Optional cap on rows per batch.

    Returns:
        Batches of input indices, longest prompts first; within a batch, longest first.

    Example:
        >>> plan_batches([10, 300, 20, 290], batch_tokens=600)
        [[1, 3], [2, 0]]
    """
    if batch_tokens < 1:
        raise ValueError(f"batch_tokens must be >= 1, got {batch_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        full = max_rows is not None and len(current) >= max_rows
        if current and (full or (len(current) + 1) * longest > batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
