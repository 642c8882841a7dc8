"""The one ranking rule every backend, adapter and server applies, and the score function.

Order: best logit first, ties by input position. Then ``score_threshold`` (keep ``score >=
threshold``), then ``top_n``. ``relevant`` means ``logit > 0`` (``score > 0.5``) for every backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from prism_core.results import PrismResult

R = TypeVar("R", bound=PrismResult)


def sigmoid(x: float) -> float:
    """A numerically safe logistic function.

    Example:
        >>> sigmoid(0.0)
        0.5
    """
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def select(results: Sequence[R], top_n: int | None, threshold: float | None) -> list[R]:
    """Sort best first (ties by input position), apply the threshold, then ``top_n``.

    Example:
        >>> rs = [PrismResult(0, 0.2, -1.4, False), PrismResult(1, 0.9, 2.2, True)]
        >>> [r.index for r in select(rs, top_n=1, threshold=None)]
        [1]
    """
    ranked = sorted(results, key=lambda r: (-r.logit, r.index))
    if threshold is not None:
        ranked = [r for r in ranked if r.score >= threshold]
    if top_n is not None:
        ranked = ranked[:top_n]
    return ranked


def passes(logit: float, threshold: float | None) -> bool:
    """Whether a document with this logit is relevant and survives the threshold (worth generating for)."""
    return logit > 0 and (threshold is None or sigmoid(logit) >= threshold)
