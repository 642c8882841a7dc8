"""Long documents: overlapping token windows, and the per-document reduction by the best window.

Every backend reads a document longer than its budget (``max_tokens_per_doc`` document tokens,
capped by what ``max_length`` leaves after the query and the fixed prompt) in one of two ways:

- ``"truncate"`` (the default): the document is cut to the budget and the result says
  ``truncated=True``; the fixed prompt suffix is never cut.
- ``"chunk"``: the document is read as overlapping windows of ``budget - WINDOW_MARGIN`` tokens
  (the margin absorbs the one or two tokens a window's text can gain when encoded inside the
  prompt), each starting ``OVERLAP`` of a window after the previous one's start, the first at the
  document's start, until a window reaches its end. Every window is one more row of the request
  (windows of all documents batch together, sharing the query prefix like any other rows); a
  document's score is its best window's (the maximum logit), ``relevant`` is that window's
  verdict, and the result's ``chunk`` holds the window's ``[start, end)`` character offsets.

Example:
    >>> offsets = [(i, i + 1) for i in range(10)]  # ten one-character tokens
    >>> windows(offsets, 10, budget=6)
    [(0, 4), (3, 7), (6, 10)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Tokens a window leaves free under the budget (a window's text re-encoded inside the prompt can
#: merge differently at its edges).
WINDOW_MARGIN = 2
#: Windows overlap by this fraction of a window, so that a passage cut by one window's edge is
#: whole in the next (the passage must fit in the overlap to be seen whole).
OVERLAP = 0.25


def window_tokens(budget: int) -> int:
    """Tokens per window for a document budget of ``budget`` tokens."""
    return max(1, budget - WINDOW_MARGIN) if budget > 2 * WINDOW_MARGIN else max(1, budget)


def windows(offsets: Sequence[tuple[int, int]], length: int, budget: int) -> list[tuple[int, int]]:
    """``[start, end)`` character spans of the windows of a document.

    Args:
        offsets: The document's tokens' character offsets (the document encoded on its own).
        length: The document's length in characters (the last window ends there).
        budget: Document tokens a row may hold.

    Returns:
        One span for a document that fits; else overlapping spans, the first starting at 0.
    """
    n = len(offsets)
    if n <= budget:
        return [(0, length)]
    size = window_tokens(budget)
    stride = max(1, size - int(size * OVERLAP))
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(n, start + size)
        first = 0 if start == 0 else offsets[start][0]
        last = length if end == n else offsets[end - 1][1]
        spans.append((first, max(first + 1, last)))
        if end == n:
            return spans
        start += stride


def best_rows(logits: Sequence[float], owners: Sequence[int], n: int) -> list[int]:
    """For each of ``n`` documents, the row (window) with the highest logit (the first on ties); a
    window not scored (NaN: a time budget ran out) loses to any scored one."""
    best: list[int] = [-1] * n
    for row, (owner, logit) in enumerate(zip(owners, logits, strict=True)):
        current = logits[best[owner]] if best[owner] >= 0 else math.nan
        if best[owner] < 0 or logit > current or (math.isnan(current) and not math.isnan(logit)):
            best[owner] = row
    return best


def check_mode(long_documents: str | None, default: str = "truncate") -> str:
    """``long_documents`` or the default; the value is checked by the validation module."""
    return default if long_documents is None else long_documents
