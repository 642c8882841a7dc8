"""Prism-Reranker as a LangChain document compressor.

Use :class:`PrismDocumentCompressor` wherever LangChain takes a ``BaseDocumentCompressor``: as the
``base_compressor`` of a ``ContextualCompressionRetriever`` or as a step of a
``DocumentCompressorPipeline``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from prism_core.protocol import Reranker
from prism_integrations._common import (
    DEFAULT_DROP_IRRELEVANT,
    DEFAULT_KEEP_ORIGINAL,
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_TOP_N,
    DEFAULT_USE_EVIDENCE,
    EngineResolver,
    KeptDocument,
    arerank_texts,
    check_engine_source,
    engine_options_of,
    missing_framework_error,
    normalize_dtype,
    rerank_texts,
    settings_of,
    validate_score_threshold,
    validate_top_n,
)

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("LangChain (langchain-core)", "langchain", __name__) from exc

__all__ = ["PrismDocumentCompressor"]

logger = logging.getLogger(__name__)


class PrismDocumentCompressor(BaseDocumentCompressor):
    """Rerank LangChain documents with Prism-Reranker and swap their bodies for evidence.

    Documents come back best first. Each kept document is a copy (same ``id``) whose
    ``page_content`` is Prism's self-contained evidence passage (when ``use_evidence`` is on and the
    evidence is complete) and whose metadata ends with ``relevance_score``, ``contribution``,
    ``evidence_used`` and, when the body was swapped and ``keep_original`` is on,
    ``original_content``. The caller's documents are never modified.

    Give either ``model`` (a hub id or a local directory, plus engine options) or ``reranker`` (any
    :class:`prism_core.Reranker`, e.g. a :class:`prism_core.PrismReranker`). With ``model`` the
    engine is ``PrismReranker.shared(model, **options)``, looked up on the first call: constructing
    the compressor loads nothing, and adapters configured alike share one loaded model.

    Defaults (the same in all three adapters): ``top_n=None`` (no limit), ``score_threshold=None``
    (no cut), ``use_evidence=True``, ``keep_original=True``, ``drop_irrelevant=True``. Engine
    options left at ``None`` keep the engine's defaults. ``top_n`` and ``score_threshold`` apply to
    the ranking; documents judged irrelevant are dropped afterwards, so fewer than ``top_n`` may come
    back.

    Example:
        >>> from langchain_classic.retrievers import ContextualCompressionRetriever
        >>> compressor = PrismDocumentCompressor(model="path/or/hub-id", top_n=3)  # loads nothing
        >>> retriever = ContextualCompressionRetriever(  # doctest: +SKIP
        ...     base_compressor=compressor, base_retriever=vector_store.as_retriever()
        ... )
        >>> docs = retriever.invoke("what is X?")  # doctest: +SKIP
        >>> docs[0].metadata["relevance_score"], docs[0].metadata["contribution"]  # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str | None = None
    """Hub id or local directory of the Prism model (``None``: the engine's default model)."""
    reranker: Any = Field(default=None, exclude=True, repr=False)
    """A ready :class:`prism_core.Reranker` to use instead of ``model`` (never serialised)."""
    device: str | None = None
    """Engine option: device (``None``: engine default)."""
    dtype: str | None = None
    """Engine option: dtype name such as ``"bfloat16"`` (a ``torch.dtype`` is accepted and stored by name)."""
    max_length: int | None = None
    """Engine option: maximum prompt length in tokens."""
    max_new_tokens: int | None = None
    """Engine option: generation budget per document."""
    batch_tokens: int | None = None
    """Engine option: token budget per batch."""
    top_n: int | None = DEFAULT_TOP_N
    """Keep at most this many documents (``None``: no limit)."""
    score_threshold: float | None = DEFAULT_SCORE_THRESHOLD
    """Keep only documents scoring at least this (``None``: no cut)."""
    use_evidence: bool = DEFAULT_USE_EVIDENCE
    """Replace a kept document's body with its evidence passage."""
    keep_original: bool = DEFAULT_KEEP_ORIGINAL
    """Keep the original body in ``metadata["original_content"]`` when it was replaced."""
    drop_irrelevant: bool = DEFAULT_DROP_IRRELEVANT
    """Leave out documents Prism judged irrelevant."""

    _resolver: EngineResolver = PrivateAttr(default_factory=EngineResolver)

    @field_validator("dtype", mode="before")
    @classmethod
    def _dtype_by_name(cls, value: Any) -> str | None:
        return normalize_dtype(value)

    @field_validator("top_n")
    @classmethod
    def _check_top_n(cls, value: int | None) -> int | None:
        return validate_top_n(value)

    @field_validator("score_threshold")
    @classmethod
    def _check_threshold(cls, value: float | None) -> float | None:
        return validate_score_threshold(value)

    @model_validator(mode="after")
    def _check_source(self) -> PrismDocumentCompressor:
        check_engine_source(self.model, self.reranker, engine_options_of(self))
        return self

    @property
    def engine(self) -> Reranker:
        """The reranker this compressor calls (looked up on first access; not loaded by this)."""
        return self._resolver.get(self.model, self.reranker, engine_options_of(self))

    @staticmethod
    def _to_documents(documents: Sequence[Document], kept: list[KeptDocument]) -> list[Document]:
        return [
            documents[k.index].model_copy(update={"page_content": k.content, "metadata": k.metadata})
            for k in kept
        ]

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query`` and return annotated copies, best first.

        Args:
            documents: The retrieved documents (not modified).
            query: The query.
            callbacks: Accepted for LangChain compatibility; unused.

        Returns:
            Copies of the kept documents (see the class docstring), best first.
        """
        settings = settings_of(self)
        if not documents:
            return []
        texts = [doc.page_content for doc in documents]
        kept = rerank_texts(self.engine, query, texts, [doc.metadata for doc in documents], settings)
        return self._to_documents(documents, kept)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`: awaits the engine's ``arerank`` (the loop is not blocked)."""
        settings = settings_of(self)
        if not documents:
            return []
        texts = [doc.page_content for doc in documents]
        kept = await arerank_texts(self.engine, query, texts, [doc.metadata for doc in documents], settings)
        return self._to_documents(documents, kept)
