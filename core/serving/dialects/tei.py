"""Text Embeddings Inference's rerank dialect: its answer list and its error shape.

Example:
    >>> from prism_core.results import PrismResult
    >>> tei_answer([PrismResult(index=0, score=0.25, logit=-1.1, relevant=False)], ["a"], False, True)
    [{'index': 0, 'score': 0.25, 'text': 'a'}]
    >>> tei_error(413, "too many")["error_type"]
    'Validation'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prism_core.results import PrismResult

_ERROR_TYPES = {
    401: "Unauthorized",
    413: "Validation",
    422: "Validation",
    429: "Overloaded",
    503: "Unhealthy",
}


def tei_answer(
    results: Sequence[PrismResult], texts: Sequence[str], raw_scores: bool, return_text: bool
) -> list[dict[str, Any]]:
    """TEI's bare list, best first: ``index``, ``score`` (the logit when ``raw_scores``), ``text``."""
    answer = []
    for r in results:
        item: dict[str, Any] = {"index": r.index, "score": r.logit if raw_scores else r.score}
        if return_text:
            item["text"] = texts[r.index]
        answer.append(item)
    return answer


def tei_error(status: int, message: str) -> dict[str, Any]:
    """TEI's error body: ``{"error": message, "error_type": ...}``."""
    return {"error": message, "error_type": _ERROR_TYPES.get(status, "Backend" if status >= 500 else "Empty")}
