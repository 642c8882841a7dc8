"""Request and response bodies of the rerank service (every common rerank dialect, with Prism's extras).

``POST /v2/rerank``, ``/v1/rerank`` and ``/rerank`` take what Cohere's rerank APIs take (``model``,
``query``, ``documents`` as strings or objects, ``rank_fields``, ``top_n``, ``return_documents``,
``max_tokens_per_doc``), which is also what Jina, vLLM, Together and Infinity send (Infinity's
``raw_scores`` included), plus Prism's ``score_threshold`` and ``evidence``. ``/v1/rerank`` and
``/rerank`` also take TEI's body (:class:`TEIRerankRequest`, see :mod:`.dialects`). Unknown fields are
ignored (clients of other Cohere-compatible servers send a few), known fields are checked strictly:
``top_n: "3"`` or ``top_n: true`` is refused with a 422 naming ``top_n``, never coerced.

The response is Cohere's (``id``, ``results: [{index, relevance_score}]`` best first, ``meta``)
plus, per result, every field of :class:`prism_core.PrismResult` (``logit``, ``relevant``,
``contribution``, ``evidence``, ``evidence_complete``, ``truncated``, ``raw_output``,
``document_tokens``, ``evidence_tokens``, ``grounding``, ``unsupported``, ``evidence_spans``,
``scored``, ``evidence_skipped``), ``null`` where not generated, and ``context_tokens`` with
``max_context_tokens``.

Example:
    >>> RerankRequest.model_validate({"query": "q", "documents": ["a"], "top_n": 1}).top_n
    1
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, create_model, model_validator

from prism_core.validation import check_query, check_text
from prism_core.wire import json_fields


def _document(value: Any) -> Any:
    if isinstance(value, str):
        return check_text(value, "document")
    if isinstance(value, dict):
        return value  # its text is taken (by ``rank_fields``) and checked in RerankRequest
    raise ValueError(
        f"Input should be a valid string or an object with a 'text' field, got {type(value).__name__}"
    )


def _text(text: str) -> str:
    return check_text(text, "text")


def _query(text: str) -> str:
    return check_query(text)


class RerankRequest(BaseModel):
    """Body of ``POST /v2/rerank``.

    Attributes:
        model: The model the client asks for. Accepted whatever it names (Cohere clients must send
            one); the response's ``meta.model`` says which model answered.
        query: The query (non-blank, encodable as UTF-8).
        documents: The candidates, as strings (Cohere v2) or objects (Cohere v1, Together, Jina's
            ``{"text": ...}``): an object is read by its ``rank_fields``.
        rank_fields: The fields of an object document the model reads, in this order, as
            ``"field: value"`` lines (default: its ``text`` field alone). String documents are
            read whole.
        top_n: Return the best ``top_n`` results (after ``score_threshold``).
        score_threshold: Return only results scoring at least this, in ``[0, 1]`` (Prism extra).
        evidence: Generate contribution and evidence for relevant returned documents (Prism extra).
            Default ``False``, deliberately, unlike the CLI and the adapters (``True``): a stock
            Cohere client, which never sends it, gets scores at scoring-pass cost instead of paying
            for generation it cannot read; ``GET /v1/info`` states it under ``defaults``.
        return_documents: Add ``document`` to each result: the original object, or
            ``{"text": ...}`` for a string. Default: off on ``/v2/rerank`` (Cohere v2), on on
            ``/v1/rerank`` (Cohere v1, Jina, Together); never on ``/rerank``, where Infinity answers
            a string and vLLM an object, and the clients of each parse only their own shape (all
            of them accept an answer without ``document``).
        max_tokens_per_doc: The document's token budget (query and prompt not counted), passed to
            the engine; with ``long_documents`` (``"truncate"`` or ``"chunk"``) it says how a longer
            document is read.
        raw_scores: Infinity's flag: ``relevance_score`` is then the raw logit, not a probability.
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
    documents: list[Annotated[Any, AfterValidator(_document)]]
    rank_fields: list[str] | None = None
    top_n: Annotated[int, Field(ge=1)] | None = None
    score_threshold: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    evidence: bool = False
    return_documents: bool | None = None
    max_tokens_per_doc: Annotated[int, Field(ge=1)] | None = None
    long_documents: Literal["truncate", "chunk"] | None = None
    raw_scores: bool = False
    time_budget: Annotated[float, Field(gt=0.0, le=86400.0, allow_inf_nan=False)] | None = None
    max_context_tokens: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _texts(self) -> RerankRequest:
        from prism_core.serving.dialects.documents import document_texts

        self._text_list = document_texts(self.documents, self.rank_fields)
        return self

    @property
    def texts(self) -> list[str]:
        """The text the model reads for each document (its ``rank_fields`` for an object)."""
        return self._text_list

    _text_list: list[str] = PrivateAttr(default_factory=list)


class TEIRerankRequest(BaseModel):
    """Body of Text Embeddings Inference's ``POST /rerank`` (served on ``/rerank`` and ``/v1/rerank``).

    Attributes:
        query: The query.
        texts: The candidate texts.
        raw_scores: Answer the raw logit instead of the probability.
        return_text: Add ``text`` to each answer.
        truncate: Accepted (this server always fits a document to its budget and says so).
        truncation_direction: ``"Right"`` (the only direction served: the document's end is cut).
        top_n: Not TEI's: honoured when sent (LiteLLM's ``huggingface/`` provider sends it).
    """

    model_config = ConfigDict(strict=True, extra="ignore")

    query: Annotated[str, AfterValidator(_query)]
    texts: list[Annotated[str, AfterValidator(_text)]]
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool | None = None
    truncation_direction: Literal["Right", "right", "Left", "left"] = "Right"
    model: str | None = None
    top_n: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _direction(self) -> TEIRerankRequest:
        if self.truncation_direction.lower() != "right":
            raise ValueError(
                f"truncation_direction {self.truncation_direction!r} is not served: this server reads a "
                "document from its start (send 'Right')"
            )
        return self


#: One result: Cohere's ``index`` and ``relevance_score``, then every field of the wire format
#: (:func:`prism_core.wire.json_fields`, read from :class:`~prism_core.results.PrismResult`), then
#: the server's ``context_tokens`` and ``document``.
RerankResultItem: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "RerankResultItem",
    __doc__="One result: Cohere's ``index`` and ``relevance_score``, then Prism's fields.",
    **json_fields(),
    context_tokens=(int | None, None),
    document=(dict[str, Any] | None, None),
)


class Usage(BaseModel):
    """Tokens a request read (OpenAI/Jina/vLLM style; ``total_tokens`` adds the generated ones)."""

    prompt_tokens: int
    total_tokens: int


class RerankResponse(BaseModel):
    """Body of a successful rerank: results best first, Cohere's ``meta`` beside ``model``/``usage``."""

    id: str
    object: str = "rerank"
    model: str
    results: list[RerankResultItem]  # type: ignore[valid-type]
    usage: Usage
    meta: dict[str, Any]


class Capabilities(BaseModel):
    """What the served backend can do (mirrors :class:`prism_core.Capabilities`)."""

    verdict: bool
    evidence: bool


class Limits(BaseModel):
    """The server's per-request limits (``max_input_tokens``: the model's input cap, when known)."""

    max_documents: int
    max_body_bytes: int
    request_timeout: float | None
    max_input_tokens: int | None = None


class Dialect(BaseModel):
    """One request dialect this server answers, and where."""

    name: str
    paths: list[str]
    request: str
    response: str


class RequestDefaults(BaseModel):
    """What ``POST /v2/rerank`` does with an optional field left out."""

    evidence: bool


class InfoResponse(BaseModel):
    """Body of ``GET /v1/info``: what this server serves (read by :class:`prism_core.RemoteReranker`)."""

    server: str
    version: str
    backend: str
    model: str
    capabilities: Capabilities
    limits: Limits
    defaults: RequestDefaults
    dialects: list[Dialect] = []
    ready: bool
    worker: str
