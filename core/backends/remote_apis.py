"""The rerank APIs :class:`~prism_core.backends.remote.RemoteReranker` speaks: routes, bodies, answers.

| ``api``       | route      | body                                            | answer                |
| ------------- | ---------- | ----------------------------------------------- | --------------------- |
| ``prism``     | /v2/rerank | Cohere v2 + ``score_threshold``, ``evidence``   | Cohere v2 + Prism's   |
| ``cohere``    | /v2/rerank | query, documents (Cohere v2, vLLM)              | ``results`` list      |
| ``cohere-v1`` | /v1/rerank | the same (Cohere v1, Jina, Together)            | ``results`` list      |
| ``infinity``  | /rerank    | the same (Infinity, vLLM)                       | ``results`` list      |
| ``tei``       | /rerank    | query, texts                                    | bare list             |

``"jina"`` and ``"together"`` are names for ``"cohere-v1"``, ``"vllm"`` for ``"infinity"``.
With ``api="auto"`` (the default) the client asks ``GET /v1/info`` (``prism-rerank serve``), then
``GET /info`` (TEI: it names ``max_client_batch_size``), then posts to ``/v2/rerank``,
``/v1/rerank`` and ``/rerank`` in turn and keeps the first route that exists.

Example:
    >>> API_ROUTES["tei"], API_ROUTES[canonical_api("jina")]
    ('/rerank', '/v1/rerank')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Every accepted ``api`` name and the one it stands for.
API_ALIASES: dict[str, str] = {
    "auto": "auto",
    "prism": "prism",
    "cohere": "cohere",
    "cohere-v2": "cohere",
    "cohere-v1": "cohere-v1",
    "jina": "cohere-v1",
    "together": "cohere-v1",
    "infinity": "infinity",
    "vllm": "infinity",
    "tei": "tei",
}

#: The rerank route of each API.
API_ROUTES: dict[str, str] = {
    "prism": "/v2/rerank",
    "cohere": "/v2/rerank",
    "cohere-v1": "/v1/rerank",
    "infinity": "/rerank",
    "tei": "/rerank",
}

#: Routes tried in turn, with the API each implies, when nothing says which API a server speaks.
PROBE_ORDER: tuple[tuple[str, str], ...] = (
    ("/v2/rerank", "cohere"),
    ("/v1/rerank", "cohere-v1"),
    ("/rerank", "infinity"),
)


def canonical_api(api: Any) -> str:
    """The canonical name of ``api`` (``"jina"`` → ``"cohere-v1"``), else raise naming it."""
    if not isinstance(api, str) or api.lower() not in API_ALIASES:
        raise ValueError(f"api must be one of {', '.join(sorted(API_ALIASES))}, got {api!r}")
    return API_ALIASES[api.lower()]


def request_body(
    api: str,
    query: str,
    docs: list[str],
    *,
    model: str | None,
    top_n: int | None,
    threshold: float | None,
    evidence: bool,
    max_tokens_per_doc: int | None = None,
    long_documents: str | None = None,
) -> dict[str, Any]:
    """The body for ``api``; only ``prism`` is sent ``top_n``/``score_threshold``/``evidence``
    (a foreign server is asked for every score and the selection is made here)."""
    if api == "tei":
        return {"query": query, "texts": docs, "raw_scores": False, "return_text": False, "truncate": True}
    body: dict[str, Any] = {"query": query, "documents": docs}
    if model is not None:
        body["model"] = model
    if api == "prism":
        if top_n is not None:
            body["top_n"] = top_n
        if threshold is not None:
            body["score_threshold"] = threshold
        body["evidence"] = evidence
        if long_documents is not None:
            body["long_documents"] = long_documents
    if max_tokens_per_doc is not None:
        body["max_tokens_per_doc"] = max_tokens_per_doc
    return body


def answer_items(api: str, data: Any) -> Any:
    """The answer's result list in Cohere's item shape (``index``, ``relevance_score``, ...), or
    ``None`` when the answer has none (the caller reports it)."""
    if api == "tei":
        if not isinstance(data, list):
            return None
        return [
            {"index": item.get("index"), "relevance_score": item.get("score")}
            if isinstance(item, Mapping)
            else item
            for item in data
        ]
    if not isinstance(data, Mapping):
        return None
    items = data.get("results")
    if items is None:
        items = data.get("data")  # Infinity before it took Cohere's field name
    return items


def tei_limits(info: Any) -> dict[str, Any] | None:
    """``{"max_documents": ...}`` from a TEI ``GET /info`` answer, or ``None`` when it is not TEI's."""
    if not isinstance(info, Mapping) or "model_id" not in info or "max_client_batch_size" not in info:
        return None
    size = info.get("max_client_batch_size")
    return {"max_documents": size if isinstance(size, int) and not isinstance(size, bool) else None}
