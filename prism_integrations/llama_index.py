"""Prism-Reranker as a LlamaIndex node postprocessor.

Use :class:`PrismNodePostprocessor` wherever LlamaIndex takes a reranker, e.g.
``index.as_query_engine(node_postprocessors=[PrismNodePostprocessor(...)])``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
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
    describe_engine,
    engine_options_of,
    missing_framework_error,
    normalize_dtype,
    rerank_texts,
    settings_of,
    validate_score_threshold,
    validate_top_n,
)

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.callbacks import CBEventType, EventPayload
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("LlamaIndex (llama-index-core)", "llama-index", __name__) from exc

__all__ = ["PrismNodePostprocessor"]

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)


def _extend_unique(keys: list[str], extra: tuple[str, ...]) -> list[str]:
    return [*keys, *(key for key in extra if key not in keys)]


class PrismNodePostprocessor(BaseNodePostprocessor):
    """Rerank LlamaIndex nodes with Prism-Reranker and swap their text for evidence.

    Nodes come back best first as new ``NodeWithScore`` objects whose ``score`` is Prism's
    relevance score and whose node is a copy of the input node (same ``node_id``). A kept node's
    text becomes Prism's self-contained evidence passage (when ``use_evidence`` is on and the
    evidence is complete); its metadata ends with ``relevance_score``, ``contribution``,
    ``evidence_used`` and, when the text was swapped and ``keep_original`` is on,
    ``original_content``. These keys are added to the node's ``excluded_llm_metadata_keys`` and
    ``excluded_embed_metadata_keys``, so the original text does not leak into prompts. The caller's
    nodes are never modified. Prism sees each node's text without metadata
    (``MetadataMode.NONE``), exactly the text it may replace.

    Give either ``model`` (a hub id or a local directory, plus engine options) or ``reranker`` (any
    :class:`prism_core.Reranker`). With ``model`` the engine is
    ``PrismReranker.shared(model, **options)``, looked up on the first call: constructing the
    postprocessor loads nothing, and adapters configured alike share one loaded model.

    Defaults (the same in all three adapters): ``top_n=None`` (no limit), ``score_threshold=None``
    (no cut), ``use_evidence=True``, ``keep_original=True``, ``drop_irrelevant=True``; engine options
    left at ``None`` keep the engine's defaults. Emits ``ReRankStartEvent``/``ReRankEndEvent`` and a
    ``CBEventType.RERANKING`` callback event, like LlamaIndex's own rerankers.

    Example:
        >>> postprocessor = PrismNodePostprocessor(model="path/or/hub-id", top_n=3)  # loads nothing
        >>> engine = index.as_query_engine(node_postprocessors=[postprocessor])  # doctest: +SKIP
        >>> response = engine.query("what is X?")  # doctest: +SKIP
        >>> [n.node.metadata["contribution"] for n in response.source_nodes]  # doctest: +SKIP
    """

    model: str | None = Field(
        default=None, description="Hub id or local directory of the Prism model (None: engine default)."
    )
    device: str | None = Field(default=None, description="Engine option: device.")
    dtype: str | None = Field(default=None, description="Engine option: dtype name, e.g. 'bfloat16'.")
    max_length: int | None = Field(default=None, description="Engine option: max prompt length in tokens.")
    max_new_tokens: int | None = Field(default=None, description="Engine option: generation budget.")
    batch_tokens: int | None = Field(default=None, description="Engine option: token budget per batch.")
    top_n: int | None = Field(default=DEFAULT_TOP_N, description="Keep at most this many nodes.")
    score_threshold: float | None = Field(
        default=DEFAULT_SCORE_THRESHOLD, description="Keep only nodes scoring at least this."
    )
    use_evidence: bool = Field(default=DEFAULT_USE_EVIDENCE, description="Swap the text for the evidence.")
    keep_original: bool = Field(
        default=DEFAULT_KEEP_ORIGINAL, description="Keep the original text in metadata['original_content']."
    )
    drop_irrelevant: bool = Field(
        default=DEFAULT_DROP_IRRELEVANT, description="Leave out nodes Prism judged irrelevant."
    )

    _reranker: Reranker | None = PrivateAttr(default=None)
    _resolver: EngineResolver = PrivateAttr(default_factory=EngineResolver)

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
        top_n: int | None = DEFAULT_TOP_N,
        score_threshold: float | None = DEFAULT_SCORE_THRESHOLD,
        use_evidence: bool = DEFAULT_USE_EVIDENCE,
        keep_original: bool = DEFAULT_KEEP_ORIGINAL,
        drop_irrelevant: bool = DEFAULT_DROP_IRRELEVANT,
        **kwargs: Any,
    ) -> None:
        """Create the postprocessor; nothing is loaded (see the class docstring for the options).

        Raises:
            ValueError: On both ``model`` and ``reranker``, engine options with ``reranker``,
                ``top_n < 1`` or ``score_threshold`` outside ``[0, 1]``.
        """
        fields: dict[str, Any] = {
            "model": model,
            "device": device,
            "dtype": normalize_dtype(dtype),
            "max_length": max_length,
            "max_new_tokens": max_new_tokens,
            "batch_tokens": batch_tokens,
            "top_n": validate_top_n(top_n),
            "score_threshold": validate_score_threshold(score_threshold),
            "use_evidence": use_evidence,
            "keep_original": keep_original,
            "drop_irrelevant": drop_irrelevant,
        }
        check_engine_source(model, reranker, engine_options_of(fields))
        super().__init__(**fields, **kwargs)
        self._reranker = reranker

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this component under."""
        return "PrismNodePostprocessor"

    @property
    def reranker(self) -> Reranker | None:
        """The reranker passed at construction, if any (not serialised)."""
        return self._reranker

    @property
    def engine(self) -> Reranker:
        """The reranker this postprocessor calls (looked up on first access; not loaded by this)."""
        return self._resolver.get(self.model, self._reranker, engine_options_of(self))

    @contextmanager
    def _events(self, nodes: list[NodeWithScore], query_bundle: QueryBundle) -> Iterator[list[NodeWithScore]]:
        """Emit the start/end instrumentation and callback events around one rerank call.

        The caller appends the reranked nodes to the yielded list.
        """
        model_name = describe_engine(self.model, self._reranker)
        top_n = self.top_n if self.top_n is not None else len(nodes)
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=top_n, model_name=model_name)
        )
        out: list[NodeWithScore] = []
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: model_name,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: top_n,
            },
        ) as event:
            yield out
            event.on_end(payload={EventPayload.NODES: out})
        dispatcher.event(ReRankEndEvent(nodes=out))

    @staticmethod
    def _inputs(nodes: list[NodeWithScore]) -> tuple[list[str], list[dict[str, Any]]]:
        texts = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        return texts, [n.node.metadata for n in nodes]

    @staticmethod
    def _to_nodes(nodes: list[NodeWithScore], kept: list[KeptDocument]) -> list[NodeWithScore]:
        out: list[NodeWithScore] = []
        for k in kept:
            source = nodes[k.index].node
            node = source.model_copy()
            node.metadata = k.metadata
            node.excluded_llm_metadata_keys = _extend_unique(
                list(source.excluded_llm_metadata_keys), k.added_keys
            )
            node.excluded_embed_metadata_keys = _extend_unique(
                list(source.excluded_embed_metadata_keys), k.added_keys
            )
            if k.evidence_used:
                node.set_content(k.content)
            out.append(NodeWithScore(node=node, score=k.score))
        return out

    @staticmethod
    def _require_query(query_bundle: QueryBundle | None) -> QueryBundle:
        if query_bundle is None:
            raise ValueError("PrismNodePostprocessor needs a query: pass query_bundle or query_str.")
        return query_bundle

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Rerank ``nodes`` for the query and return annotated copies, best first."""
        query_bundle = self._require_query(query_bundle)
        settings = settings_of(self)
        with self._events(nodes, query_bundle) as out:
            if nodes:
                texts, metadatas = self._inputs(nodes)
                kept = rerank_texts(self.engine, query_bundle.query_str, texts, metadatas, settings)
                out.extend(self._to_nodes(nodes, kept))
        return out

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Async :meth:`_postprocess_nodes`: awaits the engine's ``arerank`` (the loop is not blocked)."""
        query_bundle = self._require_query(query_bundle)
        settings = settings_of(self)
        with self._events(nodes, query_bundle) as out:
            if nodes:
                texts, metadatas = self._inputs(nodes)
                kept = await arerank_texts(self.engine, query_bundle.query_str, texts, metadatas, settings)
                out.extend(self._to_nodes(nodes, kept))
        return out
