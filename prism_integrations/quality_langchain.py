"""The quality prior as a standalone LangChain document compressor (no reranker).

:class:`QualityDocumentCompressor` annotates ``metadata["quality_score"]`` with the raw JQL-Edu
quality score and optionally drops documents below ``min_quality`` and orders them by quality. Use
it wherever LangChain takes a ``BaseDocumentCompressor`` (a ``ContextualCompressionRetriever``,
a step of a ``DocumentCompressorPipeline``, e.g. before or after a reranker).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from prism_core.quality.scorer import QualityScorer, as_quality_scorer
from prism_integrations._common import missing_framework_error
from prism_integrations._common.quality_annotate import QualityAdapter, validate_min_quality, with_field

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from pydantic import ConfigDict, Field, StrictBool, field_validator
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("LangChain (langchain-core)", "langchain", __name__) from exc

__all__ = ["QualityDocumentCompressor"]

logger = logging.getLogger(__name__)

_DOCUMENTS = QualityAdapter(
    Document, "a LangChain Document", lambda d: d.page_content, lambda d: d.metadata, with_field("metadata")
)


class QualityDocumentCompressor(BaseDocumentCompressor):
    """Annotate LangChain documents with a query-free quality score (JQL-Edu heads).

    Returns copies of the kept documents (same ``id`` and ``page_content``) whose metadata is a deep
    copy of the caller's followed by ``quality_score``, the raw score on the heads' 0–5 scale (the
    mean over heads). The query is not used. The caller's documents are never modified.

    Attributes:
        quality: A :class:`prism_core.quality.QualityScorer` (or its ``to_dict()`` mapping); loaded on
            first use and never serialised.
        min_quality: Drop documents whose raw quality is below this (``[0, 5]``; ``None``: keep all).
        sort_by_quality: Return documents best quality first (ties keep the input order);
            otherwise in input order.

    Example:
        >>> from prism_core.quality import JQL_EDU_HEADS, QualityScorer
        >>> from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline
        >>> quality = QualityDocumentCompressor(
        ...     quality=QualityScorer(JQL_EDU_HEADS, trust_remote_code=True), min_quality=2.0
        ... )
        >>> pipeline = DocumentCompressorPipeline(transformers=[quality])  # doctest: +SKIP
        >>> docs = pipeline.compress_documents(docs, "any query")  # doctest: +SKIP
        >>> docs[0].metadata["quality_score"]  # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    quality: Any = Field(exclude=True, repr=False)
    """The scorer (never serialised)."""
    min_quality: float | None = None
    """Drop documents below this raw quality (``None``: keep all)."""
    sort_by_quality: StrictBool = False
    """Order the kept documents by quality, best first."""

    @field_validator("quality", mode="before")
    @classmethod
    def _check_quality(cls, value: Any) -> QualityScorer:
        try:
            return as_quality_scorer(value)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("min_quality", mode="before")
    @classmethod
    def _check_min_quality(cls, value: Any) -> float | None:
        return validate_min_quality(value)

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Score ``documents`` and return annotated copies.

        Args:
            documents: The documents (not modified).
            query: Accepted for LangChain compatibility; the prior does not use it.
            callbacks: Accepted for LangChain compatibility; unused.

        Returns:
            Copies of the kept documents (see the class docstring).
        """
        return _DOCUMENTS.annotate(
            self.quality, documents, min_quality=self.min_quality, sort_by_quality=self.sort_by_quality
        )

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`: scores in a worker thread (the loop is not blocked)."""
        return await _DOCUMENTS.aannotate(
            self.quality, documents, min_quality=self.min_quality, sort_by_quality=self.sort_by_quality
        )
