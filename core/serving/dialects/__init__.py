"""The rerank dialects one server answers: request parsing and answer shapes, one module per family.

- :mod:`.cohere`: Cohere v2 (``/v2/rerank``) and the ``documents`` family on ``/v1/rerank`` and
  ``/rerank``: Cohere v1, Jina, vLLM, Together and Infinity bodies. One answer shape serves them all:
  Cohere's ``id``/``results``/``meta.billed_units`` beside ``object``, ``model`` and ``usage``
  (``prompt_tokens``, ``total_tokens``), each result with ``index``, ``relevance_score`` and, when
  asked, ``document`` (the original object).
- :mod:`.tei`: Text Embeddings Inference's body (``query``, ``texts``, ``raw_scores``, ``return_text``,
  ``truncate``, ``truncation_direction``), answered with TEI's bare list ``[{index, score, text?}]``
  and TEI's error shape ``{"error", "error_type"}``.

On ``/v1/rerank`` and ``/rerank`` a body with ``texts`` and no ``documents`` is TEI's; any other is
the ``documents`` family.

Example:
    >>> [d["name"] for d in DIALECTS][:2]
    ['cohere-v2', 'cohere-v1']
    >>> dialect_of({"query": "q", "texts": ["a"]})
    'tei'
"""

from __future__ import annotations

from typing import Any

#: What ``GET /v1/info`` lists: every dialect, where it is served, its request and answer shapes.
DIALECTS: list[dict[str, Any]] = [
    {
        "name": "cohere-v2",
        "paths": ["/v2/rerank"],
        "request": "query, documents (strings or objects), top_n, max_tokens_per_doc",
        "response": "id, results[index, relevance_score], meta.billed_units, model, usage",
    },
    {
        "name": "cohere-v1",
        "paths": ["/v1/rerank", "/rerank"],
        "request": "query, documents (strings or objects), rank_fields, top_n, return_documents",
        "response": "id, results[index, relevance_score, document], meta.billed_units, model, usage",
    },
    {
        "name": "jina",
        "paths": ["/v1/rerank", "/rerank"],
        "request": "query, documents, top_n, return_documents",
        "response": "model, usage, results[index, relevance_score, document]",
    },
    {
        "name": "vllm",
        "paths": ["/rerank", "/v1/rerank", "/v2/rerank"],
        "request": "query, documents, top_n",
        "response": "id, model, usage, results[index, relevance_score, document]",
    },
    {
        "name": "together",
        "paths": ["/v1/rerank"],
        "request": "query, documents (strings or objects), rank_fields, top_n, return_documents",
        "response": "object, id, model, usage, results[index, relevance_score, document]",
    },
    {
        "name": "infinity",
        "paths": ["/rerank", "/v1/rerank"],
        "request": "query, documents, top_n, return_documents, raw_scores",
        "response": "object, id, model, usage, results[index, relevance_score, document]",
    },
    {
        "name": "tei",
        "paths": ["/rerank", "/v1/rerank"],
        "request": "query, texts, raw_scores, return_text, truncate, truncation_direction",
        "response": "[index, score, text]",
    },
]


def dialect_of(body: Any) -> str:
    """``"tei"`` for a TEI body (``texts``, no ``documents``), else ``"documents"``."""
    if isinstance(body, dict) and "texts" in body and "documents" not in body:
        return "tei"
    return "documents"
