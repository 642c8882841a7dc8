"""The ``documents`` family's answer: Cohere v1/v2, Jina, vLLM, Together and Infinity in one shape.

Example:
    >>> from prism_core.results import PrismResult
    >>> body = rerank_answer(
    ...     [PrismResult(index=1, score=0.9, logit=2.2, relevant=True)], ["a", "b"],
    ...     return_documents=True, raw_scores=False, model="m", backend="prism", api_version="2",
    ...     prompt_tokens=7, generated_tokens=0, extra_meta={},
    ... )
    >>> body["results"][0]["index"], body["results"][0]["document"], body["usage"]
    (1, {'text': 'b'}, {'prompt_tokens': 7, 'total_tokens': 7})
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from prism_core.results import PrismResult
from prism_core.serving.dialects.documents import echo_document
from prism_core.wire import result_to_item


def result_item(
    result: PrismResult, documents: Sequence[Any] | None, raw_scores: bool = False
) -> dict[str, Any]:
    """One result: the wire item (:func:`prism_core.wire.result_to_item`), with its ``document``."""
    item = result_to_item(result, raw_scores=raw_scores)
    if documents is not None:
        item["document"] = echo_document(documents[result.index])
    return item


def rerank_answer(
    results: Sequence[PrismResult],
    documents: Sequence[Any],
    *,
    return_documents: bool,
    raw_scores: bool,
    model: str,
    backend: str,
    api_version: str,
    prompt_tokens: int,
    generated_tokens: int,
    extra_meta: dict[str, Any],
    context_tokens: dict[int, int] | None = None,
) -> dict[str, Any]:
    """The answer body: results best first, ``model``, ``usage`` and Cohere's ``meta``; with
    ``context_tokens`` (a ``max_context_tokens`` request), each result's tokens in the context."""
    total = prompt_tokens + generated_tokens
    items = [result_item(r, documents if return_documents else None, raw_scores) for r in results]
    if context_tokens is not None:
        for item in items:
            item["context_tokens"] = context_tokens.get(item["index"])
    return {
        "id": str(uuid.uuid4()),
        "object": "rerank",
        "model": model,
        "results": items,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": total},
        "meta": {
            "api_version": {"version": api_version},
            "billed_units": {"search_units": 1, "input_tokens": prompt_tokens},
            "tokens": {"input_tokens": prompt_tokens, "output_tokens": generated_tokens},
            "model": model,
            "backend": backend,
            **extra_meta,
        },
    }


def error_body(status: int, message: str, detail: Any = None) -> dict[str, Any]:
    """An error every client of the family reads: Cohere's ``message``, FastAPI/Jina's ``detail``,
    and vLLM/OpenAI's ``object``/``type``/``code``."""
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return {
        "message": message,
        "detail": message if detail is None else detail,
        "object": "error",
        "type": kind,
        "code": status,
    }
