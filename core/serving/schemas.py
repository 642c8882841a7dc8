"""Request and response bodies of the rerank service (Cohere v2 compatible, with Prism's extras).

``POST /v2/rerank`` takes what Cohere's v2 rerank API takes (``model``, ``query``, ``documents`` as
strings, ``top_n``; ``max_tokens_per_doc`` is accepted and ignored: the server's ``max_length``
applies) plus Prism's ``score_threshold`` and ``evidence``. Unknown fields are ignored (clients of
other Cohere-compatible servers send a few), known fields are checked strictly: ``top_n: "3"`` or
``top_n: true`` is refused with a 422 naming ``top_n``, never coerced.

The response is Cohere's (``id``, ``results: [{index, relevance_score}]`` best first, ``meta``)
plus, per result, every field of :class:`prism_core.PrismResult` (``logit``, ``relevant``,
``contribution``, ``evidence``, ``evidence_complete``, ``truncated``, ``raw_output``,
``document_tokens``, ``evidence_tokens``, ``scored``, ``evidence_skipped``), ``null`` where not
generated, and ``context_tokens`` with ``max_context_tokens``.

Example:
    >>> RerankRequest.model_validate({"query": "q", "documents": ["a"], "top_n": 1}).top_n
    1
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from prism_core.validation import check_query, check_text


def _document(text: str) -> str:
    return check_text(text, "document")


def _query(text: str) -> str:
    return check_query(text)


class RerankRequest(BaseModel):
    """Body of ``POST /v2/rerank``.

    Attributes:
        model: The model the client asks for. Accepted whatever it names (Cohere clients must send
            one); the response's ``meta.model`` says which model answered.
        query: The query (non-blank, encodable as UTF-8).
        documents: The candidate texts, as strings (Cohere v2).
        top_n: Return the best ``top_n`` results (after ``score_threshold``).
        score_threshold: Return only results scoring at least this, in ``[0, 1]`` (Prism extra).
        evidence: Generate contribution and evidence for relevant returned documents (Prism extra;
            default ``False``: a stock Cohere client gets scores, fast).
        return_documents: Add ``document: {"text": ...}`` to each result (Cohere v1 style).
        max_tokens_per_doc: Accepted for compatibility and ignored: the server's ``max_length`` caps
            every (query, document) input, and results say ``truncated``.
        time_budget: Seconds this request may take (Prism extra, fail-open): the answer is a 200
            with what is done by then (capped by the server's ``request_timeout``, which then answers
            200 too, not 504); see :mod:`prism_core.budgets`.
        max_context_tokens: Token budget of the returned text (Prism extra): the best results whose
            text (the evidence when generated and complete, else the document) fits, by the model's
            tokenizer; each gets ``context_tokens``, ``meta.dropped_by_budget`` lists the rest.
    """

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str | None = None
    query: Annotated[str, AfterValidator(_query)]
    documents: list[Annotated[str, AfterValidator(_document)]]
    top_n: Annotated[int, Field(ge=1)] | None = None
    score_threshold: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    evidence: bool = False
    return_documents: bool = False
    max_tokens_per_doc: Annotated[int, Field(ge=1)] | None = None
    time_budget: Annotated[float, Field(gt=0.0, le=86400.0, allow_inf_nan=False)] | None = None
    max_context_tokens: Annotated[int, Field(ge=1)] | None = None


class RerankResultItem(BaseModel):
    """One result: Cohere's ``index`` and ``relevance_score``, then Prism's fields."""

    index: int
    relevance_score: float
    logit: float | None = None
    relevant: bool | None = None
    contribution: str | None = None
    evidence: str | None = None
    evidence_complete: bool = False
    truncated: bool = False
    raw_output: str | None = None
    document_tokens: int | None = None
    evidence_tokens: int | None = None
    scored: bool = True
    evidence_skipped: str | None = None
    context_tokens: int | None = None
    document: dict[str, str] | None = None


class RerankResponse(BaseModel):
    """Body of a successful ``POST /v2/rerank``: results best first."""

    id: str
    results: list[RerankResultItem]
    meta: dict[str, Any]


class Capabilities(BaseModel):
    """What the served backend can do (mirrors :class:`prism_core.Capabilities`)."""

    verdict: bool
    evidence: bool


class Limits(BaseModel):
    """The server's per-request limits."""

    max_documents: int
    max_body_bytes: int
    request_timeout: float | None


class InfoResponse(BaseModel):
    """Body of ``GET /v1/info``: what this server serves (read by :class:`prism_core.RemoteReranker`)."""

    server: str
    version: str
    backend: str
    model: str
    capabilities: Capabilities
    limits: Limits
    ready: bool
    worker: str
