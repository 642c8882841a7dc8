"""A prism_core reranker as a LangChain document compressor.

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
    DEFAULT_ADD_CONTRIBUTION,
    DEFAULT_DROP_IRRELEVANT,
    DEFAULT_KEEP_ORIGINAL,
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_TOP_N,
    DEFAULT_USE_EVIDENCE,
    EngineResolver,
    EngineSpecField,
    Item,
    NotSerializableError,
    Ranking,
    RerankSettings,
    arerank_items,
    check_items,
    copy_object,
    fold_adapter_input,
    missing_framework_error,
    not_serializable_message,
    rerank_items,
)

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from pydantic import ConfigDict, Field, PrivateAttr, model_validator
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("LangChain (langchain-core)", "langchain", __name__) from exc

__all__ = ["PrismDocumentCompressor"]

logger = logging.getLogger(__name__)


class PrismDocumentCompressor(BaseDocumentCompressor):
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
    ``keep_original=True``, ``drop_irrelevant=True``. With ``use_evidence`` and ``add_contribution``
    both off, or on a score-only backend, nothing is generated (a pure scoring pass); on a
    score-only backend those two are no-ops, said once per compressor in an INFO log line.
    ``top_n`` and ``score_threshold`` apply to the ranking; irrelevant documents are dropped
    afterwards, so fewer than ``top_n`` may come back.

    Serialisation: ``model_dump()``/``model_validate()`` (and their JSON twins) round-trip the
    configuration; a compressor built with ``reranker=`` refuses to serialise
    (:class:`~prism_integrations._common.NotSerializableError`).

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
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    engine_config: EngineSpecField = None
    """The engine's configuration (``None`` only with ``reranker``); built from ``model``, ``backend``
    and engine options at construction."""
    reranker: Any = Field(default=None, exclude=True, repr=False)
    """A ready :class:`prism_core.Reranker` to use instead of a configuration (never serialised)."""
    top_n: int | None = DEFAULT_TOP_N
    """Keep at most this many documents (``None``: no limit)."""
    score_threshold: float | None = DEFAULT_SCORE_THRESHOLD
    """Keep only documents scoring at least this (``None``: no cut)."""
    use_evidence: bool = DEFAULT_USE_EVIDENCE
    """Replace a kept, relevant document's body with its evidence passage (generating backends)."""
    add_contribution: bool = DEFAULT_ADD_CONTRIBUTION
    """Put the model's one-sentence contribution into ``metadata["contribution"]`` (else ``None``)."""
    keep_original: bool = DEFAULT_KEEP_ORIGINAL
    """Keep the original body in ``metadata["original_content"]`` when it was replaced."""
    drop_irrelevant: bool = DEFAULT_DROP_IRRELEVANT
    """Leave out documents judged irrelevant (``score <= 0.5``)."""

    _resolver: EngineResolver = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _fold(cls, data: Any) -> Any:
        return fold_adapter_input(data)

    def model_post_init(self, context: Any, /) -> None:
        """Set up the (lazy) engine look-up."""
        self._resolver = EngineResolver(self.engine_config, self.reranker)

    @property
    def model(self) -> str | None:
        """The configured model (``None``: the backend's default, or a ``reranker`` object)."""
        return None if self.engine_config is None else self.engine_config.model

    @property
    def backend(self) -> str | None:
        """The configured backend (``None``: told from the checkpoint, or a ``reranker`` object)."""
        return None if self.engine_config is None else self.engine_config.backend

    @property
    def engine(self) -> Reranker:
        """The reranker this compressor calls (looked up on first access; not loaded by this)."""
        return self._resolver.get()

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

    def _check_serialisable(self) -> None:
        if self.reranker is not None:
            raise NotSerializableError(not_serializable_message(type(self).__name__))

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
        settings = RerankSettings.of(self)
        docs = self._items(documents)
        items = [Item(d.page_content, d.metadata) for d in docs]
        ranking = rerank_items(self._resolver, query, items, settings, adapter=type(self).__name__)
        return self._output(docs, ranking)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`: awaits the engine's ``arerank`` (the loop is not blocked)."""
        settings = RerankSettings.of(self)
        docs = self._items(documents)
        items = [Item(d.page_content, d.metadata) for d in docs]
        ranking = await arerank_items(self._resolver, query, items, settings, adapter=type(self).__name__)
        return self._output(docs, ranking)
