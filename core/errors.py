"""Exceptions raised by the Prism core."""

from __future__ import annotations

import math
from collections.abc import Sequence


class PrismError(Exception):
    """Base class of the errors this package raises on purpose."""


class ModelLoadError(PrismError, OSError):
    """The model or its tokenizer could not be loaded (hub unreachable, bad path, bad files)."""


class NonFiniteScoreError(PrismError, ArithmeticError):
    """The model produced NaN or infinite verdict logits (typically an fp16 overflow)."""


def check_finite(documents: Sequence[int], logits: Sequence[float], what: str = "logits") -> None:
    """Raise :class:`NonFiniteScoreError` naming the first document whose logit is NaN or infinite.

    Args:
        documents: The input index of each value's document.
        logits: One value per document.
        what: What the values are, for the message.

    Example:
        >>> check_finite([3, 5], [0.5, -1.0])
        >>> try:
        ...     check_finite([3, 5], [0.5, float("nan")])
        ... except NonFiniteScoreError as exc:
        ...     print(str(exc)[:60])
        the model produced non-finite logits for 1 of 2 documents (f
    """
    bad = [i for i, x in zip(documents, logits, strict=True) if not math.isfinite(x)]
    if bad:
        raise NonFiniteScoreError(
            f"the model produced non-finite {what} for {len(bad)} of {len(documents)} documents "
            f"(first: documents[{min(bad)}]); this is typically a float16 overflow: load the model "
            "with dtype='bfloat16' or dtype='float32'"
        )


class EngineClosedError(PrismError, RuntimeError):
    """The engine loop serving a model was closed while a request was waiting."""


class UnknownBackendError(PrismError, ValueError):
    """A backend name, or a checkpoint whose backend cannot be told, with the known backends listed."""
