"""A prism_core reranker as a LangChain document compressor.

Use :class:`PrismDocumentCompressor` wherever LangChain takes a ``BaseDocumentCompressor``: as the
``base_compressor`` of a ``ContextualCompressionRetriever`` or as a step of a
``DocumentCompressorPipeline``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from prism_integrations._common import Item, Ranking, check_items, copy_object, missing_framework_error
from prism_integrations._common.fields import AdapterFields
from prism_integrations._common.quality import quality_to_pickle

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from pydantic import ConfigDict, SerializerFunctionWrapHandler, model_serializer
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("LangChain (langchain-core)", "langchain", __name__) from exc

__all__ = ["PrismDocumentCompressor"]

logger = logging.getLogger(__name__)


class PrismDocumentCompressor(AdapterFields, BaseDocumentCompressor):
    """Rerank LangChain documents with any prism_core backend; with Prism, swap bodies for evidence.

    Documents come back best first: copies (same ``id``) whose metadata ends with
    ``relevance_score``, ``contribution``, ``evidence_used`` and, when the body was swapped and
    ``keep_original`` is on, ``original_content`` (the same keys for every backend). With a
    generating backend (Prism) a kept, relevant document's ``page_content`` becomes the model's
    self-contained evidence passage when ``use_evidence`` is on and the evidence is complete. The
    caller's documents are never modified, and metadata values that cannot be deep-copied (a lock,
    an open file) are kept as they are (the copy holds the same object).

    The engine: ``model`` (hub id or local directory; ``None``: the backend's default model),
    ``backend`` (``"prism"``, ``"qwen3-reranker"``, ``"cross-encoder"``; ``None``: told from the
    checkpoint on first use) and engine options as keyword arguments (``device``, ``dtype``,
    ``max_length``, ``max_new_tokens``, ``batch_tokens``, ``instruction``...: see
    :class:`prism_core.EngineConfig`), folded into one ``engine_config``; or ``engine_config=`` (an
    ``EngineConfig`` or its dict); or ``reranker=`` (any :class:`prism_core.Reranker`). The engine
    is the process-wide one for the configuration, looked up on the first call: constructing loads
    nothing, and adapters of any framework configured alike share one loaded model.

    Ranking options (the same in all three adapters, checked by :mod:`prism_core.validation`:
    NumPy numbers are accepted, ``"3"`` and ``True`` are not numbers): ``top_n=None`` (no limit),
    ``score_threshold=None`` (no cut), ``use_evidence=True``, ``add_contribution=True``,
    ``keep_original=True``, ``drop_irrelevant=True``, ``grounded_only=True`` (an evidence passage
    with any verbatim item the document does not contain is not swapped in: the body stays the
    original, ``evidence_used`` is ``False`` and ``evidence_rejected`` is ``"ungrounded"``; whenever
    evidence was generated the metadata also holds ``grounding``, ``unsupported`` and
    ``evidence_spans``, see :func:`prism_core.check_grounding`). With ``use_evidence`` and
    ``add_contribution``
    both off, or on a score-only backend, nothing is generated (a pure scoring pass); on a
    score-only backend those two are no-ops, said once per compressor in an INFO log line.
    ``top_n`` and ``score_threshold`` apply to the ranking; irrelevant documents are dropped
    afterwards, so fewer than ``top_n`` may come back.

    Quality prior (optional, off by default): ``quality`` (a
    :class:`prism_core.quality.QualityScorer`), ``min_quality`` (drop documents whose raw quality is
    below this, on the heads' 0–5 scale) and ``quality_weight`` ``w`` in ``[0, 1]``. With
    ``quality``, each returned document's metadata ends with ``quality_score`` (the raw quality);
    the documents are ordered, cut by ``score_threshold`` and by ``top_n`` on the blended score
    ``(1 − w) · relevance + w · clip(quality / 5, 0, 1)`` (rules in that order: quality filter,
    blend, threshold, top-n); ``relevance_score`` stays the raw relevance (LangChain has no score
    slot of its own). Quality is computed only for documents that can still be returned, on their
    original text. ``min_quality`` or ``w > 0`` without ``quality`` is refused.

    Serialisation: ``model_dump()``/``model_validate()`` (and their JSON twins) round-trip the
    configuration (``quality`` as ``QualityScorer.to_dict()``; without ``quality`` the three
    quality keys are left out); a compressor built with ``reranker=`` refuses to serialise
    (:class:`~prism_integrations._common.NotSerializableError`). Copies share the scorer.

    Example:
        >>> from langchain_classic.retrievers import ContextualCompressionRetriever
        >>> compressor = PrismDocumentCompressor(model="Qwen/Qwen3-Reranker-0.6B", top_n=3)  # loads nothing
        >>> compressor.model_dump()["engine_config"]
        {'model': 'Qwen/Qwen3-Reranker-0.6B', 'backend': None}
        >>> retriever = ContextualCompressionRetriever(  # doctest: +SKIP
        ...     base_compressor=compressor, base_retriever=vector_store.as_retriever()
        ... )
        >>> docs = retriever.invoke("what is X?")  # doctest: +SKIP
        >>> docs[0].metadata["relevance_score"]  # doctest: +SKIP

        Blended with the quality prior:

        >>> from prism_core.quality import JQL_EDU_HEADS, QualityScorer
        >>> blended = PrismDocumentCompressor(
        ...     quality=QualityScorer(JQL_EDU_HEADS, trust_remote_code=True), quality_weight=0.3, top_n=3
        ... )
        >>> docs = blended.compress_documents(docs, "what is X?")  # doctest: +SKIP
        >>> docs[0].metadata["quality_score"]  # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    @model_serializer(mode="wrap")
    def _serialise(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return self._omit_unset(handler(self))

    def __getstate__(self) -> dict[Any, Any]:
        """Pickle state: the quality scorer travels as its description (rebuilt on unpickling)."""
        state = super().__getstate__()
        return {**state, "__dict__": quality_to_pickle(state["__dict__"])}

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """The configuration as a dict (see the class docstring).

        Raises:
            NotSerializableError: The compressor was built with a ``reranker`` object.
        """
        self._check_serialisable()
        return super().model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        """The configuration as JSON.

        Raises:
            NotSerializableError: The compressor was built with a ``reranker`` object.
        """
        self._check_serialisable()
        return super().model_dump_json(**kwargs)

    def _items(self, documents: Any) -> list[Document]:
        return check_items(documents, Document, "a LangChain Document")

    @staticmethod
    def _output(documents: list[Document], ranking: Ranking) -> list[Document]:
        out = [
            copy_object(documents[k.index], page_content=k.content, metadata=k.metadata) for k in ranking.kept
        ]
        out.extend(copy_object(documents[i]) for i in ranking.unscored)
        return out

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

        Raises:
            TypeError: ``documents`` is not a list of ``Document`` (the position is named), or a
                ranking option has the wrong type.
            ValueError: A blank query, or an option out of range.
        """
        docs = self._items(documents)
        return self._output(docs, self._rank(query, [Item(d.page_content, d.metadata) for d in docs]))

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`: awaits the engine's ``arerank`` (the loop is not blocked)."""
        docs = self._items(documents)
        return self._output(docs, await self._arank(query, [Item(d.page_content, d.metadata) for d in docs]))
