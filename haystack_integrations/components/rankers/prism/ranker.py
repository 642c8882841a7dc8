"""``PrismRanker``: a prism_core reranker (Prism, Qwen3-Reranker, cross-encoders) as a Haystack ranker."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

from prism_core.protocol import Reranker
from prism_core.quality.scorer import QualityScorer
from prism_integrations._common import (
    DEFAULT_ADD_CONTRIBUTION,
    DEFAULT_DROP_IRRELEVANT,
    DEFAULT_GROUNDED_ONLY,
    DEFAULT_KEEP_ORIGINAL,
    DEFAULT_MAX_CONTEXT_TOKENS,
    DEFAULT_MIN_QUALITY,
    DEFAULT_QUALITY_WEIGHT,
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_TIME_BUDGET,
    DEFAULT_TOKEN_COUNTER,
    DEFAULT_TOP_N,
    DEFAULT_USE_EVIDENCE,
    EngineResolver,
    EngineSpec,
    Item,
    Ranking,
    RerankSettings,
    arerank_items,
    budget_options_dict,
    check_budget_options,
    check_items,
    check_quality_options,
    check_rule_options,
    copy_object,
    long_document_options,
    missing_framework_error,
    not_serializable_message,
    quality_from_pickle,
    quality_options_dict,
    quality_to_pickle,
    rerank_items,
    share_quality,
    split_engine_input,
)
from prism_integrations._common.engine import EngineBacked

try:
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.core.errors import SerializationError
    from haystack.core.serialization import generate_qualified_class_name
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("Haystack (haystack-ai)", "haystack", __name__) from exc

__all__ = ["LEGACY_TYPE", "PrismRanker"]

logger = logging.getLogger(__name__)

#: The type string that pipelines saved before version 0.2 hold; :meth:`PrismRanker.from_dict` reads it.
LEGACY_TYPE = "prism_integrations.haystack.PrismRanker"


@component
class PrismRanker(EngineBacked):
    """Rerank Haystack documents with any prism_core backend; with Prism, swap content for evidence.

    Returns ``{"documents": [...]}``, best first: copies of the kept documents (same ``id``) whose
    ``score`` is the relevance score. With a generating backend (Prism) a kept, relevant document's
    ``content`` becomes the model's self-contained evidence passage when ``use_evidence`` is on and
    the evidence is complete. Their ``meta`` ends with ``relevance_score``, ``contribution``,
    ``evidence_used`` and, when the content was swapped and ``keep_original`` is on,
    ``original_content`` (the same keys for every backend). The caller's documents are never
    modified (``meta``, ``embedding``, ``blob`` are copied; values that cannot be deep-copied, such
    as a lock, are kept as they are). Documents whose ``content`` is ``None`` (a blob) are not
    scored: they come back unchanged (copied, ``content`` still ``None``) after the ranked ones,
    with a warning.

    The engine: ``model`` (hub id or local directory; ``None``: the backend's default model),
    ``backend`` (``"prism"``, ``"qwen3-reranker"``, ``"cross-encoder"``; ``None``: told from the
    checkpoint on first use) and engine options as keyword arguments (``device``, ``dtype``,
    ``max_length``, ``max_new_tokens``, ``batch_tokens``, ``instruction``...: see
    :class:`prism_core.EngineConfig`), folded into one ``engine_config``; or ``engine_config=`` (an
    ``EngineConfig`` or its dict); or ``reranker=`` (any :class:`prism_core.Reranker`). The engine
    is the process-wide one for the configuration, looked up and loaded by :meth:`warm_up` (which a
    pipeline calls; ``run`` calls it too when needed): constructing loads nothing, and adapters of
    any framework configured alike share one loaded model.

    Ranking options (the same in all three adapters): ``top_k=None`` (no limit),
    ``score_threshold=None`` (no cut), ``use_evidence=True``, ``add_contribution=True``,
    ``keep_original=True``, ``drop_irrelevant=True``, ``grounded_only=True`` (evidence with a
    verbatim item the document does not contain is not swapped in: ``evidence_rejected:
    "ungrounded"``; ``grounding``, ``unsupported`` and ``evidence_spans`` are in ``meta`` whenever
    evidence was generated); ``top_k`` and ``score_threshold`` passed to
    :meth:`run` override the ones given here. With ``use_evidence`` and ``add_contribution`` both
    off, or on a score-only backend, nothing is generated. Long documents: ``max_tokens_per_doc``
    and ``long_documents`` (``"truncate"`` or ``"chunk"``; ``None``: the engine's defaults) are
    passed to the engine (see :mod:`prism_core.backends.long_documents`).

    Quality prior (optional, off by default): ``quality`` (a
    :class:`prism_core.quality.QualityScorer`), ``min_quality`` (drop documents whose raw quality is
    below this, on the heads' 0–5 scale) and ``quality_weight`` ``w`` in ``[0, 1]``. With
    ``quality``, each returned document's ``meta`` ends with ``quality_score`` (the raw quality);
    ``Document.score`` is the blended score ``(1 − w) · relevance + w · clip(quality / 5, 0, 1)``,
    on which the documents are ordered, cut by ``score_threshold`` and by ``top_k`` (rules in that
    order: quality filter, blend, threshold, top-k); ``meta["relevance_score"]`` stays the raw
    relevance. Quality is computed only for documents that can still be returned, on their
    original content. ``min_quality`` or ``w > 0`` without ``quality`` is refused. :meth:`warm_up`
    loads the scorer too.

    Serialisation: ``to_dict``/``from_dict`` and ``Pipeline.dumps``/``loads`` keep the engine
    configuration and the options (``quality`` as ``QualityScorer.to_dict()``; without ``quality``
    the three quality keys are left out). The class lives in the ``haystack_integrations`` namespace, so
    ``Pipeline.loads`` rebuilds it with Haystack's default allowlist (no ``allowed_modules``). A
    ranker built with a ``reranker`` object cannot be serialised (``SerializationError``).

    Example:
        >>> from haystack import Pipeline
        >>> ranker = PrismRanker(model="Qwen/Qwen3-Reranker-0.6B", backend="qwen3-reranker", top_k=3)
        >>> ranker.to_dict()["init_parameters"]["engine_config"]
        {'model': 'Qwen/Qwen3-Reranker-0.6B', 'backend': 'qwen3-reranker'}
        >>> pipe = Pipeline()
        >>> pipe.add_component("retriever", retriever)  # doctest: +SKIP
        >>> pipe.add_component("ranker", ranker)
        >>> pipe.connect("retriever.documents", "ranker.documents")  # doctest: +SKIP
        >>> out = pipe.run({"retriever": {"query": q}, "ranker": {"query": q}})  # doctest: +SKIP

        Blended with the quality prior:

        >>> from prism_core.quality import JQL_EDU_HEADS, QualityScorer
        >>> blended = PrismRanker(
        ...     quality=QualityScorer(JQL_EDU_HEADS, trust_remote_code=True), quality_weight=0.3, top_k=3
        ... )
    """

    def __init__(
        self,
        model: Any = None,
        *,
        backend: str | None = None,
        engine_config: Any = None,
        reranker: Reranker | None = None,
        top_k: int | None = DEFAULT_TOP_N,
        score_threshold: float | None = DEFAULT_SCORE_THRESHOLD,
        use_evidence: bool = DEFAULT_USE_EVIDENCE,
        add_contribution: bool = DEFAULT_ADD_CONTRIBUTION,
        keep_original: bool = DEFAULT_KEEP_ORIGINAL,
        drop_irrelevant: bool = DEFAULT_DROP_IRRELEVANT,
        grounded_only: bool = DEFAULT_GROUNDED_ONLY,
        quality: QualityScorer | Mapping[str, Any] | None = None,
        min_quality: float | None = DEFAULT_MIN_QUALITY,
        quality_weight: float = DEFAULT_QUALITY_WEIGHT,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
        max_context_tokens: int | None = DEFAULT_MAX_CONTEXT_TOKENS,
        time_budget: float | None = DEFAULT_TIME_BUDGET,
        token_counter: Callable[[str], int] | None = DEFAULT_TOKEN_COUNTER,
        **engine_options: Any,
    ) -> None:
        """Create the ranker; nothing is loaded (see the class docstring for the options).

        Raises:
            TypeError: An unknown keyword, a wrongly typed option, or a ``reranker`` that does not
                implement :class:`prism_core.Reranker`.
            ValueError: Both a configuration and ``reranker``, or an option out of range.
        """
        rest, spec, checked_reranker = split_engine_input(
            {
                "model": model,
                "backend": backend,
                "engine_config": engine_config,
                "reranker": reranker,
                **engine_options,
            }
        )
        if rest:
            raise TypeError(f"PrismRanker got unexpected keyword argument(s): {', '.join(sorted(rest))}")
        options = check_rule_options(
            {
                "top_k": top_k,
                "score_threshold": score_threshold,
                "use_evidence": use_evidence,
                "add_contribution": add_contribution,
                "keep_original": keep_original,
                "drop_irrelevant": drop_irrelevant,
                "grounded_only": grounded_only,
            },
            top_n_name="top_k",
        )
        checked_quality, checked_min_quality, checked_weight = check_quality_options(
            quality, min_quality, quality_weight
        )
        budgets = check_budget_options(
            {
                "max_context_tokens": max_context_tokens,
                "time_budget": time_budget,
                "token_counter": token_counter,
            }
        )
        self.engine_config: EngineSpec | None = spec
        self.reranker: Reranker | None = checked_reranker
        self.top_k: int | None = options["top_k"]
        self.score_threshold: float | None = options["score_threshold"]
        self.use_evidence: bool = options["use_evidence"]
        self.add_contribution: bool = options["add_contribution"]
        self.keep_original: bool = options["keep_original"]
        self.drop_irrelevant: bool = options["drop_irrelevant"]
        self.grounded_only: bool = options["grounded_only"]
        self.quality: QualityScorer | None = checked_quality
        self.min_quality: float | None = checked_min_quality
        self.quality_weight: float = checked_weight
        long_options = long_document_options(max_tokens_per_doc, long_documents)
        self.max_tokens_per_doc: int | None = long_options.get("max_tokens_per_doc")
        self.long_documents: str | None = long_options.get("long_documents")
        self.max_context_tokens: int | None = budgets["max_context_tokens"]
        self.time_budget: float | None = budgets["time_budget"]
        self.token_counter: Callable[[str], int] | None = budgets["token_counter"]
        self._resolver = EngineResolver(spec, checked_reranker)
        self._warmed = False  # the engine is loaded once; the resolver holds it

    def __deepcopy__(self, memo: dict[int, Any]) -> PrismRanker:
        """A deep copy that shares the quality scorer (and the engine)."""
        share_quality(memo, self.quality)
        cls = type(self)
        clone = cls.__new__(cls)
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            setattr(clone, name, copy.deepcopy(value, memo))
        return clone

    def __getstate__(self) -> dict[str, Any]:
        """Pickle state: the quality scorer travels as its description (rebuilt on unpickling)."""
        return quality_to_pickle(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild from :meth:`__getstate__`."""
        self.__dict__.update(quality_from_pickle(dict(state)))

    def warm_up(self) -> None:
        """Look up the engine and load its weights, and the quality scorer's (idempotent; a pipeline
        calls it before running)."""
        self._warm_engine()
        if self.quality is not None:
            self.quality.load()

    def _warm_engine(self) -> Reranker:
        if not self._warmed:
            self._resolver.warm_up()
            self._warmed = True
            logger.debug("PrismRanker warmed up")
        return self._resolver.get()

    async def warm_up_async(self) -> None:
        """:meth:`warm_up` in a worker thread, so loading does not block the event loop."""
        if not self._warmed:
            await asyncio.to_thread(self._warm_engine)
        if self.quality is not None and not self.quality.loaded:
            await asyncio.to_thread(self.quality.load)

    def to_dict(self) -> dict[str, Any]:
        """Serialise the component: ``engine_config`` (model, backend, engine options) and the options
        (the quality options only when ``quality`` is set).

        Raises:
            SerializationError: The ranker was built with a ``reranker`` object, which cannot be
                serialised; build it with ``model`` (and ``backend``, engine options) instead.
        """
        if self.engine_config is None:
            raise SerializationError(not_serializable_message(type(self).__name__))
        if self.token_counter is not None:
            raise SerializationError(not_serializable_message(type(self).__name__, "token_counter"))
        return default_to_dict(
            self,
            engine_config=self.engine_config.to_dict(),
            top_k=self.top_k,
            score_threshold=self.score_threshold,
            use_evidence=self.use_evidence,
            add_contribution=self.add_contribution,
            keep_original=self.keep_original,
            drop_irrelevant=self.drop_irrelevant,
            grounded_only=self.grounded_only,
            **quality_options_dict(self.quality, self.min_quality, self.quality_weight),
            **long_document_options(self.max_tokens_per_doc, self.long_documents),
            **budget_options_dict(self.max_context_tokens, self.time_budget),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrismRanker:
        """Rebuild a component serialised by :meth:`to_dict` (also reads pipelines saved before 0.2,
        whose type is ``prism_integrations.haystack.PrismRanker`` with flat engine options)."""
        if data.get("type") == LEGACY_TYPE:
            data = {**data, "type": generate_qualified_class_name(cls)}
        return default_from_dict(cls, data)

    def _documents(self, documents: Any) -> list[Document]:
        return check_items(documents, Document, "a Haystack Document")

    @staticmethod
    def _output(documents: list[Document], ranking: Ranking) -> dict[str, list[Document]]:
        out = [
            copy_object(documents[k.index], content=k.content, meta=k.metadata, score=k.score)
            for k in ranking.kept
        ]
        out.extend(copy_object(documents[i]) for i in ranking.unscored)
        return {"documents": out}

    def _prepare(
        self,
        documents: Any,
        top_k: Any,
        score_threshold: Any,
        max_context_tokens: Any,
        time_budget: Any,
    ) -> tuple[list[Document], RerankSettings, list[Item]]:
        """This call's settings (the init options with the call's overrides), then the checked
        documents and their items."""
        settings = RerankSettings.of(
            self,
            top_n_name="top_k",
            top_n=top_k,
            score_threshold=score_threshold,
            max_context_tokens=max_context_tokens,
            time_budget=time_budget,
        )
        docs = self._documents(documents)
        return docs, settings, [Item(d.content, d.meta) for d in docs]

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
        max_context_tokens: int | None = None,
        time_budget: float | None = None,
    ) -> dict[str, list[Document]]:
        """Rerank ``documents`` for ``query``.

        Args:
            query: The query.
            documents: Candidate documents (not modified).
            top_k: Overrides the init ``top_k`` for this call.
            score_threshold: Overrides the init ``score_threshold`` for this call.
            max_context_tokens: Overrides the init ``max_context_tokens`` for this call.
            time_budget: Overrides the init ``time_budget`` for this call.

        Returns:
            ``{"documents": [...]}``: annotated copies of the kept documents, best first, then
            the documents without content, unchanged.

        Raises:
            TypeError: ``documents`` is not a list of ``Document`` (the position is named), or an
                option has the wrong type.
            ValueError: A blank query, or an option out of range.
        """
        docs, settings, items = self._prepare(
            documents, top_k, score_threshold, max_context_tokens, time_budget
        )
        ranking = rerank_items(
            self._resolver, query, items, settings, adapter=type(self).__name__, get_engine=self._warm_engine
        )
        return self._output(docs, ranking)

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
        max_context_tokens: int | None = None,
        time_budget: float | None = None,
    ) -> dict[str, list[Document]]:
        """Async :meth:`run`: awaits the engine's ``arerank`` (the event loop is not blocked)."""
        docs, settings, items = self._prepare(
            documents, top_k, score_threshold, max_context_tokens, time_budget
        )
        ranking = await arerank_items(
            self._resolver,
            query,
            items,
            settings,
            adapter=type(self).__name__,
            get_engine=None if self._warmed else self._warm_engine,
        )
        return self._output(docs, ranking)
