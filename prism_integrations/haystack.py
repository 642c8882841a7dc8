"""Prism-Reranker as a Haystack ranker component.

Use :class:`PrismRanker` where a Haystack pipeline has a ranker: between a retriever and a prompt
builder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
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
    RerankSettings,
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
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.core.errors import SerializationError
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("Haystack (haystack-ai)", "haystack", __name__) from exc

__all__ = ["PrismRanker"]

logger = logging.getLogger(__name__)


@component
class PrismRanker:
    """Rerank Haystack documents with Prism-Reranker and swap their content for evidence.

    Returns ``{"documents": [...]}``, best first: copies of the kept documents (same ``id``) whose
    ``score`` is Prism's relevance score and whose ``content`` is Prism's self-contained evidence
    passage (when ``use_evidence`` is on and the evidence is complete). Their ``meta`` ends with
    ``relevance_score``, ``contribution``, ``evidence_used`` and, when the content was swapped and
    ``keep_original`` is on, ``original_content``. The caller's documents are never modified.

    Give either ``model`` (a hub id or a local directory, plus engine options) or ``reranker`` (any
    :class:`prism_core.Reranker`). With ``model`` the engine is
    ``PrismReranker.shared(model, **options)``, looked up and loaded by :meth:`warm_up` (which a
    pipeline calls; ``run`` calls it too when needed): constructing the ranker loads nothing, and
    adapters configured alike share one loaded model. Serialisation (``to_dict``/``from_dict``,
    ``Pipeline.dumps``/``loads``) keeps ``model`` and the options; a ranker built with a custom
    ``reranker`` object cannot be serialised (``to_dict`` raises ``SerializationError``). Haystack
    versions with a deserialisation allowlist only rebuild classes from trusted modules; trust this
    one explicitly: ``Pipeline.loads(yaml_text, allowed_modules=["prism_integrations.haystack"])``
    (or ``haystack.core.serialization.allow_deserialization_module("prism_integrations.haystack")``).

    Defaults (the same in all three adapters): ``top_k=None`` (no limit), ``score_threshold=None``
    (no cut), ``use_evidence=True``, ``keep_original=True``, ``drop_irrelevant=True``; engine options
    left at ``None`` keep the engine's defaults. ``top_k`` and ``score_threshold`` passed to
    :meth:`run` override the ones given here.

    Example:
        >>> from haystack import Pipeline
        >>> ranker = PrismRanker(model="path/or/hub-id", top_k=3)  # loads nothing
        >>> pipe = Pipeline()
        >>> pipe.add_component("retriever", retriever)  # doctest: +SKIP
        >>> pipe.add_component("ranker", ranker)
        >>> pipe.connect("retriever.documents", "ranker.documents")  # doctest: +SKIP
        >>> out = pipe.run({"retriever": {"query": q}, "ranker": {"query": q}})  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        reranker: Reranker | None = None,
        device: str | None = None,
        dtype: Any = None,
        max_length: int | None = None,
        max_new_tokens: int | None = None,
        batch_tokens: int | None = None,
        top_k: int | None = DEFAULT_TOP_N,
        score_threshold: float | None = DEFAULT_SCORE_THRESHOLD,
        use_evidence: bool = DEFAULT_USE_EVIDENCE,
        keep_original: bool = DEFAULT_KEEP_ORIGINAL,
        drop_irrelevant: bool = DEFAULT_DROP_IRRELEVANT,
    ) -> None:
        """Create the ranker; nothing is loaded (see the class docstring for the options).

        Raises:
            ValueError: On both ``model`` and ``reranker``, engine options with ``reranker``,
                ``top_k < 1`` or ``score_threshold`` outside ``[0, 1]``.
        """
        self.model = model
        self.reranker = reranker
        self.device = device
        self.dtype = normalize_dtype(dtype)
        self.max_length = max_length
        self.max_new_tokens = max_new_tokens
        self.batch_tokens = batch_tokens
        self.top_k = validate_top_n(top_k, "top_k")
        self.score_threshold = validate_score_threshold(score_threshold)
        self.use_evidence = use_evidence
        self.keep_original = keep_original
        self.drop_irrelevant = drop_irrelevant
        check_engine_source(model, reranker, engine_options_of(self))
        self._resolver = EngineResolver()
        self._engine: Reranker | None = None

    @property
    def engine(self) -> Reranker:
        """The reranker this component calls (looked up on first access; not loaded by this)."""
        return self._resolver.get(self.model, self.reranker, engine_options_of(self))

    def warm_up(self) -> None:
        """Look up the engine and load its weights (idempotent; a pipeline calls it before running)."""
        self._warm_engine()

    def _warm_engine(self) -> Reranker:
        if self._engine is None:
            self._engine = self._resolver.warm_up(self.model, self.reranker, engine_options_of(self))
            logger.debug("PrismRanker warmed up")
        return self._engine

    async def warm_up_async(self) -> None:
        """:meth:`warm_up` in a worker thread, so loading does not block the event loop."""
        await self._awarm_engine()

    async def _awarm_engine(self) -> Reranker:
        if self._engine is None:
            return await asyncio.to_thread(self._warm_engine)
        return self._engine

    def to_dict(self) -> dict[str, Any]:
        """Serialise the component (``model``, engine options and ranking options).

        Raises:
            SerializationError: If the ranker was built with a ``reranker`` object, which cannot be
                serialised; build it with ``model`` (and engine options) instead.
        """
        if self.reranker is not None:
            raise SerializationError(
                "PrismRanker built with a `reranker` object cannot be serialised; "
                "build it with `model` (and engine options) to use to_dict/Pipeline.dumps."
            )
        return default_to_dict(
            self,
            model=self.model,
            device=self.device,
            dtype=self.dtype,
            max_length=self.max_length,
            max_new_tokens=self.max_new_tokens,
            batch_tokens=self.batch_tokens,
            top_k=self.top_k,
            score_threshold=self.score_threshold,
            use_evidence=self.use_evidence,
            keep_original=self.keep_original,
            drop_irrelevant=self.drop_irrelevant,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrismRanker:
        """Rebuild a component serialised by :meth:`to_dict`."""
        return default_from_dict(cls, data)

    def _settings(self, top_k: int | None, score_threshold: float | None) -> RerankSettings:
        return settings_of(self, top_n_name="top_k", top_n=top_k, score_threshold=score_threshold)

    @staticmethod
    def _to_documents(documents: list[Document], kept: list[KeptDocument]) -> list[Document]:
        return [
            dataclasses.replace(documents[k.index], content=k.content, meta=k.metadata, score=k.score)
            for k in kept
        ]

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """Rerank ``documents`` for ``query``.

        Args:
            query: The query.
            documents: Candidate documents (not modified).
            top_k: Overrides the init ``top_k`` for this call.
            score_threshold: Overrides the init ``score_threshold`` for this call.

        Returns:
            ``{"documents": [...]}``: annotated copies of the kept documents, best first.
        """
        settings = self._settings(top_k, score_threshold)
        if not documents:
            return {"documents": []}
        engine = self._warm_engine()
        texts = [doc.content or "" for doc in documents]
        kept = rerank_texts(engine, query, texts, [doc.meta for doc in documents], settings)
        return {"documents": self._to_documents(documents, kept)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """Async :meth:`run`: awaits the engine's ``arerank`` (the event loop is not blocked)."""
        settings = self._settings(top_k, score_threshold)
        if not documents:
            return {"documents": []}
        engine = await self._awarm_engine()
        texts = [doc.content or "" for doc in documents]
        kept = await arerank_texts(engine, query, texts, [doc.meta for doc in documents], settings)
        return {"documents": self._to_documents(documents, kept)}
