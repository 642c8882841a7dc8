"""Batching by a token budget over length-sorted documents.

A fixed batch *size* wastes work on padding (a 30-token and a 2,000-token document in one batch)
and overflows memory on long documents. Here documents are sorted by prompt length, longest first
(so an out-of-memory error shows on the first batch, not the last), and cut into batches whose
padded size ``rows × longest row`` stays within ``batch_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Bucket widths are multiples of this many tokens at least (see :func:`bucket_width`).
MIN_BUCKET_STEP = 16


def plan_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Group indices into batches of padded size at most ``batch_tokens``.

    A single prompt longer than the budget gets a batch of its own.

    Args:
        lengths: Prompt length of each item, in input order.
        batch_tokens: Budget for ``rows × longest row`` in one batch.

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
        if current and (len(current) + 1) * longest > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def bucket_width(length: int, cap: int | None = None) -> int:
    """The padded width a row of ``length`` tokens runs at: a function of its own length alone.

    Widths are rounded up to a multiple of ``max(16, 2**(floor(log2(length)) - 3))`` (at most
    12.5 % of padding above 128 tokens), and never above ``cap`` (the model's maximum) unless
    ``length`` itself is. Running each
    row at a width set by its own length, and coalescing only rows of one width, is what keeps a
    row's floating-point result independent of what else is in its pass.

    Example:
        >>> [bucket_width(n) for n in (1, 16, 17, 100, 300, 600)]
        [16, 16, 32, 112, 320, 640]
        >>> bucket_width(600, cap=610)
        610
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    step = max(MIN_BUCKET_STEP, 1 << max(0, length.bit_length() - 4))
    width = -(-length // step) * step
    return width if cap is None else max(length, min(width, cap))


def plan_bucketed_batches(widths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Token-budget batches (:func:`plan_batches`) of rows that share one bucket width.

    Args:
        widths: The bucket width of each row (:func:`bucket_width`), in input order.
        batch_tokens: Budget for ``rows × width`` per batch.

    Returns:
        Batches of input indices, widest bucket first; each batch holds one width only.

    Example:
        >>> plan_bucketed_batches([32, 16, 32, 16], batch_tokens=64)
        [[0, 2], [1, 3]]
    """
    out: list[list[int]] = []
    for width in sorted(set(widths), reverse=True):
        members = [i for i, w in enumerate(widths) if w == width]
        for batch in plan_batches([width] * len(members), batch_tokens):
            out.append([members[k] for k in batch])
    return out
